// A varlink command-line client on the Go varlink library (github.com/varlink/go/varlink, as Debian packages it
// in golang-github-varlink-go-dev), to call svckit's services from an implementation svckit did not write.
// Debian's package ships the library but no `varlink` command, so this is one: every byte on the wire (framing,
// the call and reply objects, "more"/"continues", error decoding) is the library's; this file only parses the
// command line and prints what the library returns. Built by dev/go-varlink; used by
// tests/integration/go_varlink_interop.sh.
//
//	varlink [--timeout SECONDS] info ADDRESS
//	varlink [--timeout SECONDS] help ADDRESS/INTERFACE
//	varlink [--timeout SECONDS] call [--more | --oneway] ADDRESS/INTERFACE.METHOD [PARAMETERS]
//
// ADDRESS is the library's: unix:/path/to/socket (or unix:@abstract, tcp:host:port). The interface or method is
// everything after the last '/', as in the varlink command of other implementations.
//
// Output: info prints Vendor, Product, Version, URL and the interfaces one per line; help prints the interface
// description as received; call prints the parameters of each reply as compact JSON, one line per reply (with
// --more, every reply until one without "continues"; with --oneway, nothing). An error reply prints
// "error NAME PARAMETERS" on standard output and exits 1 (PARAMETERS as the library decoded them: for the
// org.varlink.service errors it knows, its own struct marshalled back). Usage, connection and protocol
// failures print to standard error and exit 2.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/varlink/go/varlink"
)

func usage() {
	fmt.Fprintf(os.Stderr, `usage: %[1]s [--timeout SECONDS] info ADDRESS
       %[1]s [--timeout SECONDS] help ADDRESS/INTERFACE
       %[1]s [--timeout SECONDS] call [--more | --oneway] ADDRESS/INTERFACE.METHOD [PARAMETERS]
`, os.Args[0])
	os.Exit(2)
}

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "varlink: "+format+"\n", a...)
	os.Exit(2)
}

// splitTarget splits ADDRESS/NAME at the last '/'.
func splitTarget(s string) (address, name string) {
	i := strings.LastIndex(s, "/")
	if i <= 0 || i == len(s)-1 {
		fail("'%s' is not ADDRESS/NAME", s)
	}
	return s[:i], s[i+1:]
}

func connect(ctx context.Context, address string) *varlink.Connection {
	c, err := varlink.NewConnection(ctx, address)
	if err != nil {
		fail("cannot connect to '%s': %v", address, err)
	}
	return c
}

func compact(raw []byte) string {
	if len(raw) == 0 {
		return "{}"
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		fail("reply parameters are not JSON: %v", err)
	}
	return b.String()
}

// reportError prints a method error reply (exit 1) or fails on anything else (exit 2).
func reportError(what string, err error) {
	var params string
	switch e := err.(type) {
	case *varlink.Error:
		raw, _ := e.Parameters.(*json.RawMessage)
		if raw == nil {
			params = "{}"
		} else {
			params = compact(*raw)
		}
	case *varlink.InterfaceNotFound, *varlink.MethodNotFound, *varlink.MethodNotImplemented, *varlink.InvalidParameter:
		b, _ := json.Marshal(e)
		params = string(b)
	default:
		fail("%s: %v", what, err)
	}
	fmt.Printf("error %s %s\n", err.Error(), params)
	os.Exit(1)
}

func info(ctx context.Context, args []string) {
	if len(args) != 1 {
		usage()
	}
	c := connect(ctx, args[0])
	defer c.Close()
	var vendor, product, version, url string
	var interfaces []string
	if err := c.GetInfo(ctx, &vendor, &product, &version, &url, &interfaces); err != nil {
		reportError("GetInfo", err)
	}
	fmt.Printf("Vendor: %s\nProduct: %s\nVersion: %s\nURL: %s\nInterfaces:\n", vendor, product, version, url)
	for _, i := range interfaces {
		fmt.Printf("  %s\n", i)
	}
}

func help(ctx context.Context, args []string) {
	if len(args) != 1 {
		usage()
	}
	address, iface := splitTarget(args[0])
	c := connect(ctx, address)
	defer c.Close()
	description, err := c.GetInterfaceDescription(ctx, iface)
	if err != nil {
		reportError("GetInterfaceDescription", err)
	}
	fmt.Println(description)
}

func call(ctx context.Context, args []string) {
	fs := flag.NewFlagSet("call", flag.ExitOnError)
	fs.Usage = usage
	more := fs.Bool("more", false, "accept more than one reply")
	oneway := fs.Bool("oneway", false, "ask for no reply")
	_ = fs.Parse(args)
	if fs.NArg() < 1 || fs.NArg() > 2 || (*more && *oneway) {
		usage()
	}
	address, method := splitTarget(fs.Arg(0))
	// No PARAMETERS: the call carries no "parameters" (an untyped nil is omitted by the library).
	var parameters interface{}
	if fs.NArg() == 2 {
		if !json.Valid([]byte(fs.Arg(1))) {
			fail("PARAMETERS is not JSON: %s", fs.Arg(1))
		}
		parameters = json.RawMessage(fs.Arg(1))
	}
	var flags uint64
	if *more {
		flags |= varlink.More
	}
	if *oneway {
		flags |= varlink.Oneway
	}
	c := connect(ctx, address)
	defer c.Close()
	receive, err := c.Send(ctx, method, parameters, flags)
	if err != nil {
		fail("sending %s: %v", method, err)
	}
	if *oneway {
		return
	}
	for {
		var reply json.RawMessage
		replyFlags, err := receive(ctx, &reply)
		if err != nil {
			reportError(method, err)
		}
		fmt.Println(compact(reply))
		if replyFlags&varlink.Continues == 0 {
			return
		}
		if !*more {
			fail("%s: a reply with \"continues\" to a call without \"more\"", method)
		}
	}
}

func main() {
	flag.Usage = usage
	timeout := flag.Float64("timeout", 10, "give up after SECONDS")
	flag.Parse()
	if flag.NArg() < 1 {
		usage()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(*timeout*float64(time.Second)))
	defer cancel()
	switch flag.Arg(0) {
	case "info":
		info(ctx, flag.Args()[1:])
	case "help":
		help(ctx, flag.Args()[1:])
	case "call":
		call(ctx, flag.Args()[1:])
	default:
		usage()
	}
}
