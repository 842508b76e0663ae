package client

// Circuit modes (spec/10-confidential.md §1, spec/08-client-api.md): what a
// circuit promises. The client's default comes from circuit.mode; a request
// picks another with a suffix on the model name, "<id>:anonymous" or
// "<id>:confidential", which /v1/models lists for every servable model.

import (
	"fmt"
	"strings"
)

// Mode names what a circuit promises.
type Mode string

const (
	// ModeConfidential runs every layer on secret shares: no single relay
	// holds a plaintext token, activation or logit.
	ModeConfidential Mode = "confidential"
	// ModeAnonymous runs the layers in plaintext: no relay learns who asked,
	// but compute relays can read the content, like a Tor exit.
	ModeAnonymous Mode = "anonymous"
)

// Modes lists the modes in the order /v1/models shows them.
var Modes = []Mode{ModeConfidential, ModeAnonymous}

// ParseMode parses a mode name.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case ModeConfidential, ModeAnonymous:
		return m, nil
	}
	return "", fmt.Errorf("client: unknown circuit mode %q (want confidential or anonymous)", s)
}

// splitModelMode splits an API model name into the model id and the mode it
// asks for (def when it has no suffix).
func splitModelMode(name string, def Mode) (string, Mode, error) {
	id, suffix, ok := strings.Cut(name, ":")
	if !ok {
		return name, def, nil
	}
	m, err := ParseMode(suffix)
	if err != nil {
		return "", "", err
	}
	return id, m, nil
}
