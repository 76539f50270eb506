// A real Go HTTPS client for the blind-mode end-to-end tests. Go's TLS is pure Go (and
// this binary is static, CGO_ENABLED=0), so kz's shim cannot reach it: under
// `kz run --blind` its connections go to kz's fallback proxy, and it trusts the run's CA
// through SSL_CERT_FILE, which crypto/x509 reads on Linux.
//
//	go_client URL ENVVAR [BODY]
//
// Sends one request with net/http (GET, or POST with BODY as application/json) carrying
// "Authorization: Bearer $ENVVAR". Prints "status N" and the response body on stdout;
// exits 0 on any HTTP response, 1 on a connection/TLS error (printed on stderr), 2 on
// bad usage. Default TLS configuration and system roots (HTTP/2 offered by ALPN as
// usual; KZ_CLIENT_HTTP1=1 offers HTTP/1.1 only, for servers that select h2 but do not
// speak it); the proxy from the environment is turned off.
package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

func usage(msg string) {
	fmt.Fprintf(os.Stderr, "go_client: %s\nusage: go_client URL ENVVAR [BODY]\n", msg)
	os.Exit(2)
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "error: %v\n", err)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 3 || len(os.Args) > 4 {
		usage("wrong arguments")
	}
	url, envName := os.Args[1], os.Args[2]
	value, ok := os.LookupEnv(envName)
	if !ok {
		usage(envName + " is not set")
	}

	method := http.MethodGet
	var body io.Reader
	if len(os.Args) == 4 {
		method = http.MethodPost
		body = strings.NewReader(os.Args[3])
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		usage(err.Error())
	}
	req.Header.Set("Authorization", "Bearer "+value)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	// The default transport, except that HTTPS_PROXY & co. are ignored: the request must
	// go where the URL says (kz's redirector, not a proxy setting, sends it to kz).
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil
	if os.Getenv("KZ_CLIENT_HTTP1") == "1" {
		// A non-nil, empty TLSNextProto keeps net/http from configuring HTTP/2.
		transport.ForceAttemptHTTP2 = false
		transport.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	client := &http.Client{Transport: transport, Timeout: 20 * time.Second}

	res, err := client.Do(req)
	if err != nil {
		fail(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		fail(err)
	}
	fmt.Printf("status %d\n%s", res.StatusCode, data)
}
