package hop

// SetSkipLayers installs the layer-skipping fault hook for a test and
// returns a function that removes it.
func SetSkipLayers(f func(cfg *Config) bool) func() {
	skipLayers = f
	return func() { skipLayers = nil }
}

// SetCorrupt installs the fault-injection hook for a test and returns a
// function that removes it.
func SetCorrupt(f func(cfg *Config, out []float32, step int)) func() {
	corrupt = f
	return func() { corrupt = nil }
}
