package directory

// How an authority signs (spec/04-directory.md §8.4): with its identity key
// (the default), with a signing key it certifies itself and rotates
// (signing_key_lifetime), or with a signing key certified offline and
// copied to it (offline_identity; the identity secret is never on the
// authority).

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/unfed/unfed/relay/keys"
)

// signingKeyWarn is how long before its certificate expires an authority
// with an offline identity starts warning.
const signingKeyWarn = 7 * 24 * time.Hour

func loadSigner(cfg AuthorityConfig, log *slog.Logger) (*Signer, error) {
	now := cfg.Now()
	if cfg.OfflineIdentity {
		sk, err := LoadSigningKey(cfg.DataDir, now)
		if err != nil {
			return nil, fmt.Errorf("directory: offline_identity: %w (certify a signing key where the identity key is kept: unfed authority certify)", err)
		}
		log.Info("signing with a certified signing key; the identity key is offline", "expires", fmtTime(sk.Expires))
		return &Signer{Signing: sk}, nil
	}
	ks, err := keys.Open(cfg.DataDir, keys.Options{Now: cfg.Now})
	if err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	s := &Signer{Identity: ks.Identity()}
	if cfg.SigningKeyLifetime > 0 {
		if sk, err := LoadSigningKey(cfg.DataDir, now); err == nil && sk.certIdentity().Equal(s.Identity.Public) {
			s.Signing = sk
		}
	}
	return s, nil
}

// signerAt returns the signer to use at now. An authority that holds its
// identity and has a signing_key_lifetime certifies a new signing key when
// the current one has less than a quarter of its lifetime left (or none);
// one with an offline identity warns in the last week of its certificate
// and cannot sign after it.
func (a *Authority) signerAt(now time.Time) (*Signer, error) {
	a.signerMu.Lock()
	defer a.signerMu.Unlock()
	s := a.signer
	life := a.cfg.SigningKeyLifetime
	switch {
	case s.Identity != nil && life > 0 && (s.Signing == nil || s.Signing.Expires.Sub(now) < life/4):
		sk, err := newSigningKey(s.Identity, a.cfg.DataDir, life, now)
		if err != nil {
			return nil, err
		}
		a.log.Info("certified a new signing key", "expires", fmtTime(sk.Expires))
		a.signer = &Signer{Identity: s.Identity, Signing: sk, MLDSA: s.MLDSA}
	case s.Identity == nil && !now.Before(s.Signing.Expires):
		return nil, fmt.Errorf("directory: the signing key's certificate expired at %s: certify a new one offline", fmtTime(s.Signing.Expires))
	case s.Identity == nil && s.Signing.Expires.Sub(now) < signingKeyWarn:
		a.log.Warn("the signing key's certificate expires soon: certify a new one offline", "expires", fmtTime(s.Signing.Expires))
	}
	return a.signer, nil
}
