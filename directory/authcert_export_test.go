package directory

// SetSkipCertIdentityCheck turns on TestAuthorityCertificates' mutation: a
// certified signature counts whatever identity its certificate names.
func SetSkipCertIdentityCheck() (restore func()) {
	skipCertIdentityCheck = true
	return func() { skipCertIdentityCheck = false }
}
