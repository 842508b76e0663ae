package obs

import (
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// LintRegistry checks every metric a registry gathers, other than the Go
// runtime's and the process collector's: the name is under the unfed
// namespace and passes Prometheus's own lint rules (counters end in _total,
// units are base units, help text present). Daemon tests call it.
func LintRegistry(reg *prometheus.Registry) error {
	mfs, err := reg.Gather()
	if err != nil {
		return fmt.Errorf("obs: gather: %w", err)
	}
	var problems []string
	for _, mf := range mfs {
		name := mf.GetName()
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
			continue
		}
		if !strings.HasPrefix(name, Namespace+"_") {
			problems = append(problems, fmt.Sprintf("%s: not under the %q namespace", name, Namespace))
		}
		if mf.GetHelp() == "" {
			problems = append(problems, name+": no help text")
		}
	}
	lints, err := testutil.GatherAndLint(reg)
	if err != nil {
		return fmt.Errorf("obs: lint: %w", err)
	}
	for _, p := range lints {
		if strings.HasPrefix(p.Metric, "go_") || strings.HasPrefix(p.Metric, "process_") {
			continue
		}
		problems = append(problems, p.Metric+": "+p.Text)
	}
	if len(problems) > 0 {
		return fmt.Errorf("obs: metric lint:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}
