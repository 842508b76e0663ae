//go:build !amd64

package tensor

func kernelLevels() (levels map[string]func(), restore func()) {
	return map[string]func(){"generic": func() {}}, func() {}
}
