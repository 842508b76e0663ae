package hop

import (
	"fmt"
)

// Code is the typed reason of an ERROR message (spec §3.9).
type Code uint8

// Error codes. A client MUST treat a code it does not know as CodeInternal.
const (
	CodeWrongModel      Code = 1  // the hop does not serve the model id
	CodeRangeNotServed  Code = 2  // the hop serves the model, not that layer range or role
	CodeCapacity        Code = 3  // no session slot or KV memory left
	CodeContextTooLong  Code = 4  // the request exceeds the session's context limit
	CodeBadMessage      Code = 5  // malformed, out of order, or inconsistent with SETUP
	CodeInsecureRefused Code = 6  // TOKENS input (token ids in the clear) is not allowed on this relay
	CodeMPCFailure      Code = 7  // a party refused a PREP or input, a step failed, or the other party ended
	CodeInternal        Code = 8  // anything else; the reason says no more than needed
	CodeUnsupported     Code = 9  // protocol version or message type not supported
	CodeEdgeAuth        Code = 10 // an edge message did not authenticate: replayed, reordered or forged
	CodePaymentRequired Code = 11 // work the session's paid balance does not cover, where the network requires payment
	CodePaymentRefused  Code = 12 // a PAY entry was refused (bad or spent credit, wrong price); the session stays
)

var codeNames = map[Code]string{
	CodeWrongModel:      "wrong-model",
	CodeRangeNotServed:  "range-not-served",
	CodeCapacity:        "out-of-capacity",
	CodeContextTooLong:  "context-too-long",
	CodeBadMessage:      "bad-message",
	CodeInsecureRefused: "insecure-refused",
	CodeMPCFailure:      "mpc-failure",
	CodeInternal:        "internal",
	CodeUnsupported:     "unsupported",
	CodeEdgeAuth:        "edge-auth",
	CodePaymentRequired: "payment-required",
	CodePaymentRefused:  "payment-refused",
}

func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("code(%d)", uint8(c))
}

// Fatal reports whether a hop that sent this code after SETUP_OK has closed
// its session (spec §3.9). Only CodeContextTooLong, CodeUnsupported and
// CodePaymentRefused leave the session usable.
func (c Code) Fatal() bool {
	return c != CodeContextTooLong && c != CodeUnsupported && c != CodePaymentRefused
}

// Error is the ERROR message a hop sends the client, and the Go error a
// client returns for it (spec §3.9):
//
//	code    u8
//	length  u8
//	reason  length bytes of printable ASCII (0x20–0x7e)
type Error struct {
	Code   Code
	Reason string
}

// Type implements Msg.
func (*Error) Type() MsgType { return TypeError }

// Append implements Msg. The reason is cut to MaxReason bytes and bytes
// outside printable ASCII become '?'.
func (e *Error) Append(dst []byte) []byte {
	r := sanitizeReason(e.Reason)
	dst = append(dst, byte(TypeError), byte(e.Code), byte(len(r)))
	return append(dst, r...)
}

func (e *Error) Error() string {
	if e.Reason == "" {
		return "hop: remote " + e.Code.String()
	}
	return "hop: remote " + e.Code.String() + ": " + e.Reason
}

// Is makes errors.Is(err, &Error{Code: c}) match any remote error of code c.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Reason == ""
}

func sanitizeReason(s string) string {
	if len(s) > MaxReason {
		s = s[:MaxReason]
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}

func decodeError(b []byte) (*Error, error) {
	if len(b) < 3 || len(b) != 3+int(b[2]) {
		return nil, malformed(TypeError, "%d bytes", len(b))
	}
	r := b[3:]
	for _, c := range r {
		if c < 0x20 || c > 0x7e {
			return nil, malformed(TypeError, "reason byte %#02x", c)
		}
	}
	return &Error{Code: Code(b[1]), Reason: string(r)}, nil
}
