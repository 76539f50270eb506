// A real Go HTTP/2 client (net/http: HTTP/2 over TLS by default, its own HPACK encoder)
// for the HTTP/2 blind-mode tests. Go's TLS is pure Go (static, CGO_ENABLED=0), so under
// `kz run --blind` its connections go to kz's fallback proxy; it trusts the run's CA
// through SSL_CERT_FILE.
//
//	go_h2_client URL COUNT
//
// Sends one request to URL/0 (which opens the connection), then COUNT-1 more at once
// (concurrent streams on that connection), request i to URL/<i>, POST:
//
//	even i: "Authorization: Bearer $API_KEY", "X-Api-Key: $API_KEY", body {"i":i,"key":$API_KEY}
//	odd i:  the same with $OTHER_KEY
//
// Prints "PROTO <proto of every response>" (e.g. "PROTO HTTP/2.0") and
// "RESULT " + JSON [{i, status, body}] on stdout; exits 1 on an error, 2 on bad usage.
// Default TLS configuration and system roots; the proxy from the environment is off.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

type result struct {
	I      int    `json:"i"`
	Status int    `json:"status"`
	Body   string `json:"body"`
	proto  string
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: go_h2_client URL COUNT")
		os.Exit(2)
	}
	base := strings.TrimSuffix(os.Args[1], "/")
	count, err := strconv.Atoi(os.Args[2])
	keys := [2]string{os.Getenv("API_KEY"), os.Getenv("OTHER_KEY")}
	if err != nil || count < 1 || keys[0] == "" || keys[1] == "" {
		fmt.Fprintln(os.Stderr, "go_h2_client: COUNT >= 1, API_KEY and OTHER_KEY are needed")
		os.Exit(2)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	one := func(i int) (result, error) {
		key := keys[i%2]
		body, _ := json.Marshal(map[string]interface{}{"i": i, "key": key})
		req, err := http.NewRequest("POST", base+"/"+strconv.Itoa(i), strings.NewReader(string(body)))
		if err != nil {
			return result{}, err
		}
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("X-Api-Key", key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return result{}, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return result{}, err
		}
		return result{I: i, Status: resp.StatusCode, Body: string(b), proto: resp.Proto}, nil
	}
	first, err := one(0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	results := []result{first}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var failed error
	for i := 1; i < count; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r, err := one(i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = err
				return
			}
			results = append(results, r)
		}(i)
	}
	wg.Wait()
	if failed != nil {
		fmt.Fprintln(os.Stderr, "error:", failed)
		os.Exit(1)
	}
	sort.Slice(results, func(a, b int) bool { return results[a].I < results[b].I })
	protos := map[string]bool{}
	for _, r := range results {
		protos[r.proto] = true
	}
	names := []string{}
	for p := range protos {
		names = append(names, p)
	}
	sort.Strings(names)
	out, _ := json.Marshal(results)
	fmt.Println("PROTO " + strings.Join(names, ","))
	fmt.Println("RESULT " + string(out))
}
