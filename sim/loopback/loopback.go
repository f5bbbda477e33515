// Package loopback serves an http.Handler on a loopback port for the simulators, in plain HTTP
// or in HTTPS with a self-signed certificate made at start. It does what the simulators used
// net/http/httptest for, so that the product binary (whose demo runs the simulators) links no
// test package.
//
// It never listens beyond loopback and never persists its key.
package loopback

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server is an HTTP(S) server on a loopback port.
type Server struct {
	// URL is the base URL, http://127.0.0.1:port or https://127.0.0.1:port.
	URL string

	srv       *http.Server
	ln        net.Listener
	cert      *tls.Certificate // nil for plain HTTP
	client    *http.Client
	serveDone chan struct{}

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]http.ConnState
	wg     sync.WaitGroup // one per open connection
}

// Options configure Start.
type Options struct {
	// TLS serves HTTPS with a fresh self-signed certificate for 127.0.0.1, ::1 and localhost.
	TLS bool
	// ErrorLog receives the server's errors (TLS handshake failures included); nil: the log
	// package's standard logger.
	ErrorLog *log.Logger
}

// Start serves h on a fresh loopback port until Close.
func Start(h http.Handler, opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen on loopback: %w", err)
	}
	s := &Server{
		srv:       &http.Server{Handler: h, ErrorLog: opts.ErrorLog, ReadHeaderTimeout: time.Minute},
		ln:        ln,
		conns:     map[net.Conn]http.ConnState{},
		serveDone: make(chan struct{}),
	}
	s.srv.ConnState = s.track
	transport := &http.Transport{}
	scheme := "http"
	if opts.TLS {
		cert, err := selfSigned()
		if err != nil {
			ln.Close()
			return nil, err
		}
		s.cert = cert
		// HTTP/1.1 only, as httptest serves by default.
		s.srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
		s.ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{*cert}, NextProtos: []string{"http/1.1"}})
		transport.TLSClientConfig = &tls.Config{RootCAs: s.CertPool()}
		scheme = "https"
	}
	s.client = &http.Client{Transport: transport}
	s.URL = scheme + "://" + ln.Addr().String()
	go func() {
		defer close(s.serveDone)
		_ = s.srv.Serve(s.ln)
	}()
	return s, nil
}

// track follows each connection's state so that Close can end idle ones and wait for the rest.
func (s *Server) track(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch st {
	case http.StateNew:
		s.wg.Add(1)
		s.conns[c] = st
		if s.closed {
			c.Close()
		}
	case http.StateActive:
		s.conns[c] = st
	case http.StateIdle:
		s.conns[c] = st
		if s.closed {
			c.Close()
		}
	case http.StateHijacked, http.StateClosed:
		if _, ok := s.conns[c]; ok {
			delete(s.conns, c)
			s.wg.Done()
		}
	}
}

// Close stops accepting, closes idle connections and waits for requests in progress to end.
func (s *Server) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		s.ln.Close()
		s.srv.SetKeepAlivesEnabled(false)
		for c, st := range s.conns {
			if st == http.StateIdle || st == http.StateNew {
				c.Close()
			}
		}
	}
	s.mu.Unlock()
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		t.CloseIdleConnections()
	}
	s.client.CloseIdleConnections()
	<-s.serveDone
	s.wg.Wait()
}

// Client returns an HTTP client that trusts the server's certificate.
func (s *Server) Client() *http.Client { return s.client }

// TLSCertificate returns the server's certificate and key (nil for plain HTTP).
func (s *Server) TLSCertificate() *tls.Certificate { return s.cert }

// Certificate returns the server's parsed certificate (nil for plain HTTP).
func (s *Server) Certificate() *x509.Certificate {
	if s.cert == nil {
		return nil
	}
	return s.cert.Leaf
}

// CertificatePEM returns the server's certificate in PEM form (nil for plain HTTP), for
// clients configured through a CA file (the listener's endpoints.ca_file).
func (s *Server) CertificatePEM() []byte {
	if s.cert == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.cert.Leaf.Raw})
}

// CertPool returns a pool holding the server's certificate (empty for plain HTTP).
func (s *Server) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	if c := s.Certificate(); c != nil {
		pool.AddCert(c)
	}
	return pool
}

// selfSigned makes a P-256 certificate for the loopback names, valid for a day around now.
func selfSigned() (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"listener simulator"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost", "example.com"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
