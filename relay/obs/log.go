// Package obs holds what every UNFED daemon shares for being observed:
// structured logs with redaction, Prometheus metrics and /healthz, and the
// machine-readable lines that announce bound listeners.
//
// Logs never carry prompts, activations, keys, circuit ids or client
// addresses in the clear: values that might are passed through Redact (or one
// of its typed helpers), and the handler from NewLogger redacts any attribute
// whose key names such a value, as a second line of defence.
package obs

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// LogConfig is the logging section shared by every program's configuration.
type LogConfig struct {
	// Level is the minimum level logged: debug, info, warn or error.
	Level string `mapstructure:"level" doc:"Minimum log level: debug, info, warn or error."`
	// Format is text (logfmt) or json.
	Format string `mapstructure:"format" doc:"Log format: text or json."`
	// Unsafe turns redaction off, for debugging on a private testnet only.
	Unsafe bool `mapstructure:"unsafe" doc:"Log addresses, circuit ids and keys unredacted (private testnets only; never prompts or activations)."`
}

// DefaultLogConfig is info-level text logging with redaction.
func DefaultLogConfig() LogConfig { return LogConfig{Level: "info", Format: "text"} }

// NewLogger builds a logger writing to w as configured.
func NewLogger(w io.Writer, c LogConfig) (*slog.Logger, error) {
	var level slog.Level
	switch strings.ToLower(c.Level) {
	case "", "info":
		level = slog.LevelInfo
	case "debug":
		level = slog.LevelDebug
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		return nil, fmt.Errorf("obs: unknown log level %q (want debug, info, warn or error)", c.Level)
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: redactAttr(c.Unsafe)}
	switch strings.ToLower(c.Format) {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("obs: unknown log format %q (want text or json)", c.Format)
}

// Redacted is the text that replaces a redacted value.
const Redacted = "[scrubbed]"

// alwaysSecret names attribute keys whose values are never logged, even with
// redaction off: the content of inference.
var alwaysSecret = map[string]bool{
	"prompt": true, "completion": true, "activation": true, "activations": true,
	"logits": true, "token": true, "tokens": true, "text": true, "secret": true,
	"private_key": true, "password": true,
}

// sensitive names attribute keys that identify people or circuits: redacted
// unless unsafe logging is on.
var sensitive = map[string]bool{
	"client": true, "client_addr": true, "remote": true, "remote_addr": true,
	"peer_addr": true, "circ": true, "circuit": true, "circ_id": true, "key": true,
}

func redactAttr(unsafe bool) func([]string, slog.Attr) slog.Attr {
	return func(groups []string, a slog.Attr) slog.Attr {
		k := strings.ToLower(a.Key)
		if alwaysSecret[k] || (!unsafe && sensitive[k]) {
			return slog.String(a.Key, Redacted)
		}
		if sv, ok := a.Value.Any().(sensitiveValue); ok {
			if unsafe {
				return slog.String(a.Key, sv.v)
			}
			return slog.String(a.Key, Redacted)
		}
		return a
	}
}

// sensitiveValue is a value redacted unless unsafe logging is on. Its text
// and JSON forms are redacted too, so a handler not built by NewLogger never
// prints it.
type sensitiveValue struct{ v string }

func (s sensitiveValue) String() string               { return Redacted }
func (s sensitiveValue) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// Redact wraps a value that may be logged only on a private testnet with
// redaction off: an address, a circuit id, a public key.
func Redact(key string, v any) slog.Attr {
	return slog.Any(key, sensitiveValue{fmt.Sprint(v)})
}

// Addr is Redact for a network address.
func Addr(key, addr string) slog.Attr { return Redact(key, addr) }
