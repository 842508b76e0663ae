package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

type testConfig struct {
	DataDir string `mapstructure:"data_dir" doc:"State directory."`
	Metrics struct {
		Listen string `mapstructure:"listen" doc:"Metrics address."`
	} `mapstructure:"metrics"`
	Timeout time.Duration `mapstructure:"timeout" doc:"A timeout."`
	Verbose bool          `mapstructure:"verbose" doc:"Verbose."`
	Peers   []string      `mapstructure:"peers" doc:"Peers."`
	Token   string        `mapstructure:"token" doc:"A secret." secret:"true"`
	Auths   []struct {
		Name string `mapstructure:"name"`
	} `mapstructure:"authorities" doc:"Authorities."`
}

func defaults() *testConfig {
	c := &testConfig{DataDir: "/default", Timeout: time.Second}
	c.Metrics.Listen = "127.0.0.1:0"
	return c
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "c.yaml", "data_dir: /file\nmetrics:\n  listen: 127.0.0.1:1\ntimeout: 5s\nauthorities:\n  - name: a1\n  - name: a2\n")
	env := []string{"UNFED_METRICS_LISTEN=127.0.0.1:2", "UNFED_TIMEOUT=7s", "OTHER=x"}

	c := defaults()
	if err := Load(c, []string{"--config", file}, Options{Environ: []string{}}); err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/file" || c.Metrics.Listen != "127.0.0.1:1" || c.Timeout != 5*time.Second || len(c.Auths) != 2 || c.Auths[1].Name != "a2" {
		t.Fatalf("file did not override defaults: %+v", c)
	}

	c = defaults()
	if err := Load(c, []string{"--config", file}, Options{Environ: env}); err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/file" || c.Metrics.Listen != "127.0.0.1:2" || c.Timeout != 7*time.Second {
		t.Fatalf("env did not override file: %+v", c)
	}

	c = defaults()
	args := []string{"--config", file, "--metrics.listen", "127.0.0.1:3", "--verbose", "--peers", "a,b"}
	if err := Load(c, args, Options{Environ: env}); err != nil {
		t.Fatal(err)
	}
	if c.Metrics.Listen != "127.0.0.1:3" || !c.Verbose || c.Timeout != 7*time.Second || strings.Join(c.Peers, "|") != "a|b" {
		t.Fatalf("flags did not override env: %+v", c)
	}

	c = defaults()
	if err := Load(c, nil, Options{Environ: []string{}}); err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/default" || c.Timeout != time.Second {
		t.Fatalf("defaults lost: %+v", c)
	}
}

func TestTOML(t *testing.T) {
	file := writeFile(t, "c.toml", "data_dir = \"/toml\"\n[metrics]\nlisten = \"127.0.0.1:9\"\n")
	c := defaults()
	if err := Load(c, []string{"--config", file}, Options{Environ: []string{}}); err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/toml" || c.Metrics.Listen != "127.0.0.1:9" {
		t.Fatalf("%+v", c)
	}
}

func TestUnknownKeySuggestsNearest(t *testing.T) {
	for content, want := range map[string]string{
		"data_dri: /x\n":                `unknown key "data_dri" (did you mean "data_dir"?)`,
		"metrics:\n  lisen: 1.2.3.4\n":  `unknown key "metrics.lisen" (did you mean "metrics.listen"?)`,
		"completely_unrelated_key: 1\n": `unknown key "completely_unrelated_key"`,
	} {
		file := writeFile(t, "c.yaml", content)
		err := Load(defaults(), []string{"--config", file}, Options{Environ: []string{}})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("file %q: err = %v, want it to contain %s", content, err, want)
		}
	}
}

func TestBadValues(t *testing.T) {
	if err := Load(defaults(), []string{"--timeout", "soon"}, Options{Environ: []string{}}); err == nil {
		t.Error("bad duration accepted")
	}
	if err := Load(defaults(), []string{"--no-such-flag", "1"}, Options{Environ: []string{}}); err == nil {
		t.Error("unknown flag accepted")
	}
	if err := Load(defaults(), []string{"--config", "/nonexistent/x.yaml"}, Options{Environ: []string{}}); err == nil {
		t.Error("missing config file accepted")
	}
	bad := writeFile(t, "c.yaml", "data_dir: [unclosed\n")
	if err := Load(defaults(), []string{"--config", bad}, Options{Environ: []string{}}); err == nil {
		t.Error("malformed YAML accepted")
	}
}

func TestPrintConfigRedactsSecrets(t *testing.T) {
	var out bytes.Buffer
	err := Load(defaults(), []string{"--token", "hunter2", "--print-config"}, Options{Stdout: &out, Environ: []string{}})
	if !errors.Is(err, ErrHelp) {
		t.Fatalf("err = %v, want ErrHelp", err)
	}
	s := out.String()
	if strings.Contains(s, "hunter2") || !strings.Contains(s, "# secrets set but not printed: token") || !strings.Contains(s, `data_dir: "/default"`) {
		t.Fatalf("print-config output:\n%s", s)
	}
}

// printConfig runs Load with --print-config and returns what it printed.
func printConfig(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := Load(defaults(), append(args, "--print-config"), Options{Stdout: &out, Environ: []string{}}); !errors.Is(err, ErrHelp) {
		t.Fatalf("print-config %v: %v", args, err)
	}
	return out.String()
}

// TestPrintConfigRoundTrip: --print-config is YAML that loads back to the
// same configuration, lists, durations and nested structs included.
func TestPrintConfigRoundTrip(t *testing.T) {
	file := writeFile(t, "c.yaml", "data_dir: /file\nmetrics:\n  listen: \"127.0.0.1:1\"\ntimeout: 1m30s\npeers: [a, \"b c\", \"x: y\"]\nauthorities:\n  - name: a1\n  - name: a2\n")
	first := printConfig(t, "--config", file, "--verbose")
	want := defaults()
	if err := Load(want, []string{"--config", file, "--verbose"}, Options{Environ: []string{}}); err != nil {
		t.Fatal(err)
	}
	again := writeFile(t, "printed.yaml", first)
	got := defaults()
	if err := Load(got, []string{"--config", again}, Options{Environ: []string{}}); err != nil {
		t.Fatalf("loading the printed config: %v\n%s", err, first)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip changed the configuration:\n got  %+v\n want %+v\nprinted:\n%s", got, want, first)
	}
	if second := printConfig(t, "--config", again); second != first {
		t.Fatalf("printed twice differently:\n%s\n---\n%s", first, second)
	}
}

// TestDurationWithoutUnit: a bare number is not a duration (it used to
// become nanoseconds), from a file, the environment or a flag; 0 is fine.
func TestDurationWithoutUnit(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  []string
	}{
		{args: []string{"--config", writeFile(t, "c.yaml", "timeout: 5\n")}},
		{args: []string{"--config", writeFile(t, "c.toml", "timeout = 5\n")}},
		{env: []string{"UNFED_TIMEOUT=5"}},
		{args: []string{"--timeout", "5"}},
	} {
		err := Load(defaults(), c.args, Options{Environ: c.env})
		if err == nil || !strings.Contains(err.Error(), "key timeout") || !strings.Contains(err.Error(), "unit") {
			t.Errorf("%v %v: err = %v, want a unit error naming the key", c.args, c.env, err)
		}
	}
	c := defaults()
	if err := Load(c, []string{"--config", writeFile(t, "c.yaml", "timeout: 0\n")}, Options{Environ: []string{}}); err != nil || c.Timeout != 0 {
		t.Fatalf("timeout: 0: %v, %v", err, c.Timeout)
	}
}

// TestTypeErrorNamesKeyValueSource: a wrong type names the key, the value
// and where it came from.
func TestTypeErrorNamesKeyValueSource(t *testing.T) {
	file := writeFile(t, "c.yaml", "verbose: maybe\n")
	for _, c := range []struct {
		args []string
		env  []string
		want []string
	}{
		{args: []string{"--config", file}, want: []string{"key verbose", `"maybe"`, "file " + file}},
		{env: []string{"UNFED_VERBOSE=perhaps"}, want: []string{"key verbose", `"perhaps"`, "environment variable UNFED_VERBOSE"}},
		{args: []string{"--timeout", "soon"}, want: []string{"key timeout", `"soon"`, "flag --timeout"}},
		{args: []string{"--config", writeFile(t, "d.yaml", "authorities: 7\n")}, want: []string{"key authorities", "7", "file "}},
	} {
		err := Load(defaults(), c.args, Options{Environ: c.env})
		if err == nil {
			t.Errorf("%v %v accepted", c.args, c.env)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v %v: err = %v, want it to contain %s", c.args, c.env, err, w)
			}
		}
	}
}

func TestVersionAndOneDashFlags(t *testing.T) {
	var out bytes.Buffer
	if err := Load(defaults(), []string{"--version"}, Options{Program: "prog", Stdout: &out, Environ: []string{}}); !errors.Is(err, ErrHelp) {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "prog ") || !strings.Contains(out.String(), "go1.") {
		t.Fatalf("--version printed %q", out.String())
	}
	c := defaults()
	if err := Load(c, []string{"-metrics.listen", "127.0.0.1:7", "-data-dir=/d"}, Options{Environ: []string{}}); err != nil {
		t.Fatal(err)
	}
	if c.Metrics.Listen != "127.0.0.1:7" || c.DataDir != "/d" {
		t.Fatalf("one-dash long flags: %+v", c)
	}
}

func TestHelpListsEveryKey(t *testing.T) {
	var out bytes.Buffer
	if err := Load(defaults(), []string{"--help"}, Options{Stdout: &out, Environ: []string{}}); !errors.Is(err, ErrHelp) {
		t.Fatal(err)
	}
	for _, want := range []string{"metrics.listen", "UNFED_METRICS_LISTEN", "--metrics.listen", "authorities", "file only"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
}
