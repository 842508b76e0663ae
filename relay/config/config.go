// Package config is the one configuration loader every UNFED program uses.
//
// A program describes its configuration as a Go struct whose fields carry a
// `mapstructure:"key"` tag and a `doc:"one sentence"` tag; the values already
// in the struct are the defaults. Load then fills it from, lowest to highest
// precedence:
//
//  1. the defaults in the struct;
//  2. a configuration file named by --config (YAML, or TOML by the .toml
//     extension);
//  3. environment variables UNFED_<KEY>, the key upper-cased with '.' and '-'
//     turned into '_' (for example UNFED_METRICS_LISTEN);
//  4. command-line flags --<key> (for example --metrics.listen).
//
// Unknown keys in the file are rejected, naming the nearest valid key.
// --print-config prints the effective configuration, with fields tagged
// `secret:"true"` redacted, and --help lists every key with its doc.
package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// EnvPrefix is the prefix of every configuration environment variable.
const EnvPrefix = "UNFED"

// ErrHelp is returned by Load when --help or --print-config was given and the
// program should exit successfully without running.
var ErrHelp = errors.New("config: help requested")

// Field describes one configuration key.
type Field struct {
	Key     string // dotted key, e.g. "metrics.listen"
	Doc     string
	Type    string
	Default any
	Secret  bool
	index   []int
}

// Fields lists the keys of a configuration struct, in declaration order.
// Slices of structs and maps are file-only keys: they have no flag or
// environment variable.
func Fields(cfg any) ([]Field, error) {
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("config: want a pointer to a struct, got %T", cfg)
	}
	var out []Field
	walk(v.Elem(), "", nil, &out)
	return out, nil
}

func walk(v reflect.Value, prefix string, index []int, out *[]Field) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name := sf.Tag.Get("mapstructure")
		if name == "" || name == "-" {
			continue
		}
		if strings.HasSuffix(name, ",squash") && sf.Type.Kind() == reflect.Struct {
			walk(v.Field(i), prefix, append(append([]int(nil), index...), i), out)
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		idx := append(append([]int(nil), index...), i)
		fv := v.Field(i)
		if sf.Type.Kind() == reflect.Struct && sf.Type != reflect.TypeOf(time.Time{}) {
			walk(fv, key, idx, out)
			continue
		}
		*out = append(*out, Field{
			Key:     key,
			Doc:     sf.Tag.Get("doc"),
			Type:    typeName(sf.Type),
			Default: fv.Interface(),
			Secret:  sf.Tag.Get("secret") == "true",
			index:   idx,
		})
	}
}

func typeName(t reflect.Type) string {
	switch {
	case t == reflect.TypeOf(time.Duration(0)):
		return "duration"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return "list of strings"
	case t.Kind() == reflect.Slice:
		return "list"
	case t.Kind() == reflect.Map:
		return "map"
	}
	return t.Kind().String()
}

func (f Field) fileOnly() bool { return f.Type == "list" || f.Type == "map" }

// FlagName is the command-line flag for a key.
func FlagName(key string) string { return strings.ReplaceAll(key, "_", "-") }

// EnvName is the environment variable for a key.
func EnvName(key string) string {
	r := strings.NewReplacer(".", "_", "-", "_")
	return EnvPrefix + "_" + strings.ToUpper(r.Replace(key))
}

// Options tune Load.
type Options struct {
	// Program is the program name shown in --help.
	Program string
	// Stdout receives --help and --print-config output; nil means os.Stdout.
	Stdout io.Writer
	// Environ is the environment; nil means os.Environ().
	Environ []string
}

// Load fills cfg (a pointer to a configuration struct holding its defaults)
// from the file named by --config, the environment and the flags in args.
// It returns ErrHelp after printing --help or --print-config output.
func Load(cfg any, args []string, opts Options) error {
	fields, err := Fields(cfg)
	if err != nil {
		return err
	}
	stdout := opts.Stdout
	if stdout == nil {
		stdout = os.Stdout
	}
	environ := opts.Environ
	if environ == nil {
		environ = os.Environ()
	}

	fs := pflag.NewFlagSet(opts.Program, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configPath := fs.String("config", "", "configuration file (YAML, or TOML by its .toml extension)")
	printConfig := fs.Bool("print-config", false, "print the effective configuration (secrets redacted) and exit")
	help := fs.BoolP("help", "h", false, "list every configuration key and exit")
	for _, f := range fields {
		if f.fileOnly() {
			continue
		}
		fs.String(FlagName(f.Key), "", f.Doc)
		if f.Type == "bool" {
			fs.Lookup(FlagName(f.Key)).NoOptDefVal = "true"
		}
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("config: %w (see --help)", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("config: unexpected argument %q (see --help)", fs.Arg(0))
	}
	if *help {
		fmt.Fprintf(stdout, "Usage: %s [--config FILE] [--KEY VALUE ...] [--print-config]\n\n", opts.Program)
		fmt.Fprint(stdout, Reference(fields))
		return ErrHelp
	}

	v := viper.New()
	known := make(map[string]bool, len(fields))
	for _, f := range fields {
		known[f.Key] = true
		v.SetDefault(f.Key, f.Default)
	}
	if *configPath != "" {
		if err := readFile(v, *configPath, fields); err != nil {
			return err
		}
	}
	env := envMap(environ)
	for _, f := range fields {
		if f.fileOnly() {
			continue
		}
		if val, ok := env[EnvName(f.Key)]; ok {
			v.Set(f.Key, val)
		}
	}
	for _, f := range fields {
		if fl := fs.Lookup(FlagName(f.Key)); fl != nil && fl.Changed {
			v.Set(f.Key, fl.Value.String())
		}
	}

	dc := &mapstructure.DecoderConfig{
		Result:           cfg,
		ErrorUnused:      true,
		WeaklyTypedInput: true,
		TagName:          "mapstructure",
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		),
	}
	dec, err := mapstructure.NewDecoder(dc)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := dec.Decode(v.AllSettings()); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if *printConfig {
		fmt.Fprint(stdout, Effective(cfg))
		return ErrHelp
	}
	return nil
}

func readFile(v *viper.Viper, path string, fields []Field) error {
	fv := viper.New()
	fv.SetConfigFile(path)
	switch strings.ToLower(filepath.Ext(path)) {
	case ".toml":
		fv.SetConfigType("toml")
	case ".yaml", ".yml", "":
		fv.SetConfigType("yaml")
	default:
		return fmt.Errorf("config: %s: unknown file type %q (want .yaml, .yml or .toml)", path, filepath.Ext(path))
	}
	if err := fv.ReadInConfig(); err != nil {
		return fmt.Errorf("config: reading %s: %w", path, err)
	}
	var keys []string
	for _, f := range fields {
		keys = append(keys, f.Key)
	}
	for _, k := range fv.AllKeys() {
		if !fileKeyKnown(k, fields) {
			if near := Nearest(k, keys); near != "" {
				return fmt.Errorf("config: %s: unknown key %q (did you mean %q?)", path, k, near)
			}
			return fmt.Errorf("config: %s: unknown key %q", path, k)
		}
		v.Set(k, fv.Get(k))
	}
	return nil
}

// fileKeyKnown accepts a key that names a field, or lies inside a map field
// (whose contents are free-form).
func fileKeyKnown(k string, fields []Field) bool {
	for _, f := range fields {
		if k == f.Key || (f.Type == "map" && strings.HasPrefix(k, f.Key+".")) {
			return true
		}
	}
	return false
}

func envMap(environ []string) map[string]string {
	m := make(map[string]string)
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, EnvPrefix+"_") {
			m[k] = v
		}
	}
	return m
}

// Nearest returns the candidate closest to s by edit distance, or "" when
// none is reasonably close.
func Nearest(s string, candidates []string) string {
	best, bestD := "", len(s)/2+2
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Reference renders the documentation of every key: flag, environment
// variable, type, default and doc.
func Reference(fields []Field) string {
	var b strings.Builder
	for _, f := range fields {
		fmt.Fprintf(&b, "  %s (%s)\n", f.Key, f.Type)
		if f.Doc != "" {
			fmt.Fprintf(&b, "      %s\n", f.Doc)
		}
		if f.fileOnly() {
			b.WriteString("      file only\n")
		} else {
			fmt.Fprintf(&b, "      flag --%s, env %s\n", FlagName(f.Key), EnvName(f.Key))
		}
		if d := formatValue(f.Default, f.Secret); d != "" && d != `""` && d != "[]" {
			fmt.Fprintf(&b, "      default %s\n", d)
		}
	}
	return b.String()
}

// Effective renders the values in cfg, one `key: value` line each, sorted,
// with secrets redacted.
func Effective(cfg any) string {
	fields, err := Fields(cfg)
	if err != nil {
		return err.Error() + "\n"
	}
	v := reflect.ValueOf(cfg).Elem()
	sort.Slice(fields, func(i, j int) bool { return fields[i].Key < fields[j].Key })
	var b strings.Builder
	for _, f := range fields {
		fmt.Fprintf(&b, "%s: %s\n", f.Key, formatValue(v.FieldByIndex(f.index).Interface(), f.Secret))
	}
	return b.String()
}

func formatValue(val any, secret bool) string {
	if secret {
		if reflect.ValueOf(val).IsZero() {
			return `""`
		}
		return "[redacted]"
	}
	switch x := val.(type) {
	case string:
		return fmt.Sprintf("%q", x)
	case time.Duration:
		return x.String()
	case []string:
		return "[" + strings.Join(x, ", ") + "]"
	}
	return fmt.Sprintf("%v", val)
}
