package directory

// ReadAuthorityFileForTest exposes readAuthorityFile to the fuzz target.
var ReadAuthorityFileForTest = readAuthorityFile
