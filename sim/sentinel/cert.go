package sentinel

import "encoding/pem"

// CertificatePEM returns the simulator's TLS certificate in PEM form, for clients configured
// through a CA file (the listener's endpoints.ca_file).
func (s *Server) CertificatePEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}
