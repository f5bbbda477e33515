package sentinel

// CertificatePEM returns the simulator's TLS certificate in PEM form, for clients configured
// through a CA file (the listener's endpoints.ca_file).
func (s *Server) CertificatePEM() []byte { return s.srv.CertificatePEM() }
