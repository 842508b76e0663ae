package daemon

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// NewFlagSet returns the flag set of an `unfed` subcommand. Parsing is Go's
// (so --dir and the older -dir both work); --help and -h print the synopsis
// and every flag in the GNU style the daemons use (--dir DIR) and make
// Parse return flag.ErrHelp, which RunCommand turns into exit code 0.
// synopsis follows the command name, e.g. "[flags] FILE|URL".
func NewFlagSet(name, synopsis string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() { PrintUsage(fs, "unfed "+name+" "+synopsis) }
	return fs
}

// PrintUsage writes "Usage: usage" and the flags of fs, GNU style.
func PrintUsage(fs *flag.FlagSet, usage string) {
	w := fs.Output()
	fmt.Fprintf(w, "Usage: %s\n", strings.TrimSpace(usage))
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprintln(w, "\nFlags:")
			first = false
		}
		arg, doc := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if arg != "" {
			line += " " + strings.ToUpper(arg)
		}
		fmt.Fprintln(w, line)
		if doc != "" {
			fmt.Fprintf(w, "      %s", doc)
		}
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}
