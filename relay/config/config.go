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
// Unknown keys in the file are rejected, naming the nearest valid key. A
// value of the wrong type is rejected naming the key, the value and where it
// came from; a duration must carry a unit ("5s", not 5), except 0.
// --print-config prints the effective configuration as YAML that loads back
// unchanged, with fields tagged `secret:"true"` left out (a comment names
// them); --help lists every key with its doc; --version prints the build.
// A long flag may also be spelled with one dash (-metrics.listen).
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
	"go.yaml.in/yaml/v3"

	"github.com/unfed/unfed/relay/obs"
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
	// Version is what --version prints; empty means the program name and
	// the build information.
	Version string
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
	version := fs.Bool("version", false, "print the program's version and exit")
	for _, f := range fields {
		if f.fileOnly() {
			continue
		}
		fs.String(FlagName(f.Key), "", f.Doc)
		if f.Type == "bool" {
			fs.Lookup(FlagName(f.Key)).NoOptDefVal = "true"
		}
	}
	if err := fs.Parse(normalizeArgs(fs, args)); err != nil {
		return fmt.Errorf("config: %w (see --help)", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("config: unexpected argument %q (see --help)", fs.Arg(0))
	}
	if *version {
		if opts.Version != "" {
			fmt.Fprint(stdout, opts.Version)
		} else {
			fmt.Fprint(stdout, obs.VersionLine(opts.Program))
		}
		return ErrHelp
	}
	if *help {
		fmt.Fprintf(stdout, "Usage: %s [--config FILE] [--KEY VALUE ...] [--print-config] [--version]\n\n", opts.Program)
		fmt.Fprint(stdout, Reference(fields))
		return ErrHelp
	}

	v := viper.New()
	// source names where each key's value came from, for error messages.
	source := make(map[string]string, len(fields))
	for _, f := range fields {
		v.SetDefault(f.Key, f.Default)
		source[f.Key] = "the default"
	}
	if *configPath != "" {
		if err := readFile(v, *configPath, fields, source); err != nil {
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
			source[f.Key] = "environment variable " + EnvName(f.Key)
		}
	}
	for _, f := range fields {
		if fl := fs.Lookup(FlagName(f.Key)); fl != nil && fl.Changed {
			v.Set(f.Key, fl.Value.String())
			source[f.Key] = "flag --" + FlagName(f.Key)
		}
	}

	// Each key is decoded on its own first, so a type error names the key,
	// the value and its source rather than the decoder's internals.
	root := reflect.ValueOf(cfg).Elem()
	for _, f := range fields {
		target := reflect.New(root.FieldByIndex(f.index).Type())
		if err := decode(v.Get(f.Key), target.Interface()); err != nil {
			val := "[redacted]"
			if !f.Secret {
				val = fmt.Sprintf("%#v", v.Get(f.Key))
			}
			return fmt.Errorf("config: key %s: bad value %s from %s: %w", f.Key, val, source[f.Key], unwrapDecode(err))
		}
	}
	if err := decode(v.AllSettings(), cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if *printConfig {
		fmt.Fprint(stdout, Effective(cfg))
		return ErrHelp
	}
	return nil
}

// decode converts input (as viper holds it) into out, a pointer.
func decode(input, out any) error {
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:           out,
		ErrorUnused:      true,
		WeaklyTypedInput: true,
		TagName:          "mapstructure",
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			durationHook,
			mapstructure.StringToSliceHookFunc(","),
		),
	})
	if err != nil {
		return err
	}
	return dec.Decode(input)
}

// unwrapDecode strips mapstructure's "decoding failed due to the following
// error(s):" framing from a single-value error.
func unwrapDecode(err error) error {
	msg := err.Error()
	if i := strings.LastIndex(msg, "\n\n"); i >= 0 {
		msg = msg[i+2:]
	}
	return errors.New(strings.TrimPrefix(strings.TrimSpace(msg), "'' "))
}

var durationType = reflect.TypeOf(time.Duration(0))

// durationHook parses durations from strings and refuses bare numbers: a
// YAML `step_timeout: 5` would otherwise become 5 ns. Zero needs no unit.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != durationType || from == durationType {
		return data, nil
	}
	switch from.Kind() {
	case reflect.String:
		s := strings.TrimSpace(data.(string))
		if s == "0" {
			return time.Duration(0), nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("not a duration (want a number with a unit, e.g. 5s or 1m30s): %w", err)
		}
		return d, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		if reflect.ValueOf(data).IsZero() {
			return time.Duration(0), nil
		}
		return nil, fmt.Errorf("duration %v has no unit (write e.g. \"%vs\" or \"%vms\")", data, data, data)
	}
	return data, nil
}

// normalizeArgs accepts the one-dash spelling of a long flag (-log.level,
// as Go's flag package allows) by rewriting it to --log.level.
func normalizeArgs(fs *pflag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if len(name) > 1 && fs.Lookup(name) != nil {
				a = "-" + a
			}
		}
		out = append(out, a)
	}
	return out
}

func readFile(v *viper.Viper, path string, fields []Field, source map[string]string) error {
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
		for _, f := range fields {
			if k == f.Key || strings.HasPrefix(k, f.Key+".") {
				source[f.Key] = "file " + path
			}
		}
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

// Effective renders the values in cfg as a YAML configuration file that
// Load reads back to the same values, keys in declaration order. Secret
// fields that are set are left out, and a comment at the top names them.
func Effective(cfg any) string {
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Sprintf("# config: want a pointer to a struct, got %T\n", cfg)
	}
	var redacted []string
	doc := structNode(v.Elem(), "", &redacted)
	if len(redacted) > 0 {
		doc.HeadComment = "secrets set but not printed: " + strings.Join(redacted, ", ")
	}
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return "# config: " + err.Error() + "\n"
	}
	enc.Close()
	return b.String()
}

// structNode is the YAML mapping of a configuration struct, keyed by the
// mapstructure tags.
func structNode(v reflect.Value, prefix string, redacted *[]string) *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name := sf.Tag.Get("mapstructure")
		if !sf.IsExported() || name == "" || name == "-" {
			continue
		}
		fv := v.Field(i)
		if strings.HasSuffix(name, ",squash") && sf.Type.Kind() == reflect.Struct {
			m.Content = append(m.Content, structNode(fv, prefix, redacted).Content...)
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		if sf.Tag.Get("secret") == "true" && !fv.IsZero() {
			*redacted = append(*redacted, key)
			continue
		}
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: name}, valueNode(fv, key, redacted))
	}
	return m
}

func valueNode(v reflect.Value, key string, redacted *[]string) *yaml.Node {
	switch {
	case v.Type() == durationType:
		return &yaml.Node{Kind: yaml.ScalarNode, Value: time.Duration(v.Int()).String()}
	case v.Kind() == reflect.Struct:
		return structNode(v, key, redacted)
	case v.Kind() == reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		if v.Len() == 0 {
			n.Style = yaml.FlowStyle
		}
		for i := 0; i < v.Len(); i++ {
			n.Content = append(n.Content, valueNode(v.Index(i), key, redacted))
		}
		return n
	case v.Kind() == reflect.Map:
		n := &yaml.Node{Kind: yaml.MappingNode}
		if v.Len() == 0 {
			n.Style = yaml.FlowStyle
		}
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		for _, k := range keys {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: fmt.Sprint(k)}, valueNode(v.MapIndex(k), key, redacted))
		}
		return n
	}
	n := &yaml.Node{}
	if err := n.Encode(v.Interface()); err != nil {
		return &yaml.Node{Kind: yaml.ScalarNode, Value: fmt.Sprint(v.Interface())}
	}
	if v.Kind() == reflect.String {
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
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
