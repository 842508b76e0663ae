package directory

import (
	"context"
	"time"

	"github.com/unfed/unfed/relay/keys"
)

// Test access to the authority's internals (external test package).

// SignUpload returns the Unfed-Authority header value for an upload.
func SignUpload(id *keys.Identity, path string, now time.Time, body []byte) string {
	return signUpload(&Signer{Identity: id}, path, now, body)
}

// SignUploadWith is SignUpload as any Signer signs, a certified signing key
// included.
func SignUploadWith(s *Signer, path string, now time.Time, body []byte) string {
	return signUpload(s, path, now, body)
}

// ProbeAll runs the probe phase for the period starting at va.
func (a *Authority) ProbeAll(ctx context.Context, va time.Time) {
	a.probeAll(ctx, va, a.cfg.ProbeTimeout)
}

// BuildVote makes the authority's vote for the period starting at va.
func (a *Authority) BuildVote(va time.Time) (*Vote, error) { return a.buildVote(va) }

// NextValidAfter is the start of the next period after now.
func (a *Authority) NextValidAfter(now time.Time) time.Time { return a.nextValidAfter(now) }

// VoteLimit is the largest vote body the authority accepts now.
func (a *Authority) VoteLimit() int64 { return a.voteLimit() }

// ReadAuthorityFileForTest exposes readAuthorityFile to the fuzz target.
var ReadAuthorityFileForTest = readAuthorityFile

// MeasureOffset exposes measureOffset.
var MeasureOffset = measureOffset

// SpreadMeasurements turns the measurements' spread over the phase on or
// off (off: the mutation of TestMeasurementsSpread).
func SpreadMeasurements(on bool) { spreadMeasurements = on }
