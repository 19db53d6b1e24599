// Command pstest serves Google's in-memory Pub/Sub fake (cloud.google.com/go/pubsub/pstest)
// so tests and `python -m ledger serve` can use the real google-cloud-pubsub client locally.
// It prints the address it listens on, then serves until stdin closes or it is killed.
package main

import (
	"fmt"
	"io"
	"os"

	"cloud.google.com/go/pubsub/pstest"
)

func main() {
	srv := pstest.NewServer()
	defer srv.Close()
	fmt.Println(srv.Addr)
	_, _ = io.Copy(io.Discard, os.Stdin)
}
