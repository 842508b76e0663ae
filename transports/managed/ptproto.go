package managed

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/unfed/unfed/transports/base"
)

// Keywords a PT writes on stdout (pt-spec §3.3). Keywords we do not know are
// ignored, as the spec requires.
const (
	kwVersion       = "VERSION"
	kwVersionError  = "VERSION-ERROR"
	kwEnvError      = "ENV-ERROR"
	kwCmethod       = "CMETHOD"
	kwCmethodError  = "CMETHOD-ERROR"
	kwCmethodsDone  = "CMETHODS"
	kwSmethod       = "SMETHOD"
	kwSmethodError  = "SMETHOD-ERROR"
	kwSmethodsDone  = "SMETHODS"
	kwProxyError    = "PROXY-ERROR"
	kwLog           = "LOG"
	kwStatus        = "STATUS"
	maxLineLen      = 16 << 10
	smethodArgsPref = "ARGS:"
)

// Kind classifies a PT stdout line.
type Kind int

// Line kinds.
const (
	KindOther        Kind = iota // unknown keyword: ignored
	KindVersion                  // VERSION <v>
	KindVersionError             // VERSION-ERROR <msg>
	KindEnvError                 // ENV-ERROR <msg>
	KindCmethod                  // CMETHOD <method> <proto> <addr>
	KindCmethodError             // CMETHOD-ERROR <method> <msg>
	KindCmethodsDone             // CMETHODS DONE
	KindSmethod                  // SMETHOD <method> <addr> [ARGS:k=v,...]
	KindSmethodError             // SMETHOD-ERROR <method> <msg>
	KindSmethodsDone             // SMETHODS DONE
	KindProxyError               // PROXY-ERROR <msg>
	KindLog                      // LOG / STATUS: passed to the logger
)

// Line is one parsed PT stdout line.
type Line struct {
	Kind    Kind
	Version string    // KindVersion
	Method  string    // CMETHOD, SMETHOD and their errors
	Proto   string    // CMETHOD: "socks5" or "socks4"
	Addr    string    // CMETHOD, SMETHOD: host:port
	Args    base.Args // SMETHOD ARGS
	Msg     string    // errors, LOG, STATUS
}

// ErrBadLine is returned for a PT stdout line that does not parse.
var ErrBadLine = errors.New("managed: bad PT line")

// ParseLine parses one line of a PT's stdout (without its newline).
func ParseLine(s string) (Line, error) {
	if len(s) > maxLineLen {
		return Line{}, fmt.Errorf("%w: %d bytes", ErrBadLine, len(s))
	}
	s = strings.TrimSuffix(s, "\r")
	kw, rest, _ := strings.Cut(s, " ")
	f := strings.Fields(rest)
	bad := func(why string) (Line, error) {
		return Line{}, fmt.Errorf("%w: %s: %q", ErrBadLine, why, truncate(s))
	}
	switch kw {
	case kwVersion:
		if len(f) != 1 {
			return bad("VERSION takes one argument")
		}
		return Line{Kind: KindVersion, Version: f[0]}, nil
	case kwVersionError:
		return Line{Kind: KindVersionError, Msg: rest}, nil
	case kwEnvError:
		return Line{Kind: KindEnvError, Msg: rest}, nil
	case kwProxyError:
		return Line{Kind: KindProxyError, Msg: rest}, nil
	case kwCmethod:
		if len(f) < 3 {
			return bad("CMETHOD needs a method, a protocol and an address")
		}
		if err := checkHostPort(f[2]); err != nil {
			return bad(err.Error())
		}
		if !validMethod(f[0]) {
			return bad("method name")
		}
		return Line{Kind: KindCmethod, Method: f[0], Proto: f[1], Addr: f[2]}, nil
	case kwCmethodError, kwSmethodError:
		if len(f) < 1 || !validMethod(f[0]) {
			return bad("error line needs a method")
		}
		_, msg, _ := strings.Cut(rest, " ")
		k := KindCmethodError
		if kw == kwSmethodError {
			k = KindSmethodError
		}
		return Line{Kind: k, Method: f[0], Msg: msg}, nil
	case kwCmethodsDone, kwSmethodsDone:
		if len(f) != 1 || f[0] != "DONE" {
			return bad("expected DONE")
		}
		if kw == kwCmethodsDone {
			return Line{Kind: KindCmethodsDone}, nil
		}
		return Line{Kind: KindSmethodsDone}, nil
	case kwSmethod:
		if len(f) < 2 {
			return bad("SMETHOD needs a method and an address")
		}
		if !validMethod(f[0]) {
			return bad("method name")
		}
		if err := checkHostPort(f[1]); err != nil {
			return bad(err.Error())
		}
		l := Line{Kind: KindSmethod, Method: f[0], Addr: f[1], Args: base.Args{}}
		for _, opt := range f[2:] {
			if v, ok := strings.CutPrefix(opt, smethodArgsPref); ok {
				a, err := base.ParseArgs(v, ',')
				if err != nil {
					return bad(err.Error())
				}
				l.Args = a
			}
		}
		return l, nil
	case kwLog, kwStatus:
		return Line{Kind: KindLog, Msg: rest}, nil
	}
	return Line{Kind: KindOther, Msg: s}, nil
}

func checkHostPort(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("address %q: %v", a, err)
	}
	if net.ParseIP(host) == nil {
		return fmt.Errorf("address %q: host is not an IP literal", a)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("address %q: bad port", a)
	}
	return nil
}

func validMethod(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c|0x20 >= 'a' && c|0x20 <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
