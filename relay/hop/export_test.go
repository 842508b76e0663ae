package hop

// SetCorrupt installs the fault-injection hook for a test and returns a
// function that removes it.
func SetCorrupt(f func(cfg *Config, out []float32, step int)) func() {
	corrupt = f
	return func() { corrupt = nil }
}
