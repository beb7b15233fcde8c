// Command nubis runs a self-hosted AWS compute cloud on this machine: `nubis serve` runs the server,
// `nubis env` prints the environment that points the aws CLI and SDKs at it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/nubis/nubis/internal/console"
	"github.com/nubis/nubis/internal/server"
	"github.com/nubis/nubis/internal/version"
)

const usage = `nubis - a self-hosted AWS compute cloud that speaks AWS's own APIs.

Usage:
  nubis serve [flags]     run the server in the foreground (Ctrl-C stops it)
  nubis env [flags]       print export lines that point the aws CLI and SDKs at nubis:
                            eval "$(nubis env)"
  nubis add-trigger --function NAME
                          put an HTTP API in front of a function, as the AWS console's
                          "Add trigger → API Gateway → HTTP API → Open" does; prints its URL
  nubis images [list|build [NAME...]]
                          list the built-in EC2 images, or build them now from Debian
                          packages (otherwise they are built on first use)
  nubis version           print the version
  nubis help [command]    show help for a command

Run 'nubis <command> --help' for the flags of a command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(rest, stderr)
	case "env":
		return env(rest, stdout, stderr)
	case "add-trigger":
		return addTrigger(rest, stdout, stderr)
	case "images":
		return images(rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "nubis", version.Version)
		return 0
	case "help", "-h", "--help":
		if len(rest) > 0 && rest[0] != "help" {
			return run([]string{rest[0], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "nubis: unknown command %q\n\n%s", cmd, usage)
	return 2
}

func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: nubis %s [flags]\n\n%s\n\nFlags:\n", name, synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			arg, help := flag.UnquoteUsage(f)
			fmt.Fprintf(stderr, "  --%s %s\n        %s", f.Name, arg, help)
			if f.DefValue != "" {
				fmt.Fprintf(stderr, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(stderr)
		})
	}
	return fs
}

func serve(args []string, stderr io.Writer) int {
	fs := newFlagSet("serve", "Runs the nubis server in the foreground until SIGINT or SIGTERM, then finishes\n"+
		"in-flight requests, closes the store and exits 0.", stderr)
	listen := fs.String("listen", server.DefaultListen, "TCP `address` of the AWS API")
	dataDir := fs.String("data-dir", server.DefaultDataDir(), "`directory` of the store (one server per directory)")
	region := fs.String("region", server.DefaultRegion, "the AWS `region` this server is")
	ociRuntime := fs.String("oci-runtime", "runc", "OCI runtime `binary` that runs sandboxes (only runc is tested; runsc and crun do not work yet)")
	keepWarm := fs.Duration("keep-warm", 10*time.Minute, "how long an idle Lambda execution environment is kept warm")
	lambdaConcurrency := fs.Int("lambda-concurrency", 1000, "the account's Lambda concurrency limit")
	maxInstances := fs.Int("max-instances", 32, "the account's limit on EC2 instances that are not terminated")
	zones := fs.String("zones", "", "comma-separated Availability `zones` of the region (default <region>a,<region>b,<region>c)")
	logFormat := fs.String("log-format", "text", "log `format`: text or json")
	logLevel := fs.String("log-level", "info", "log `level`: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "nubis serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if !regionPattern.MatchString(*region) {
		fmt.Fprintf(stderr, "nubis serve: --region %q is not an AWS region name such as us-east-1\n", *region)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "nubis serve: --log-level: %v\n", err)
		return 2
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch *logFormat {
	case "text":
		h = slog.NewTextHandler(stderr, opts)
	case "json":
		h = slog.NewJSONHandler(stderr, opts)
	default:
		fmt.Fprintf(stderr, "nubis serve: --log-format must be text or json, not %q\n", *logFormat)
		return 2
	}
	log := slog.New(h)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := server.New(ctx, server.Config{Listen: *listen, DataDir: *dataDir, Region: *region, Log: log,
		Runtime: *ociRuntime, KeepWarm: *keepWarm, LambdaConcurrency: *lambdaConcurrency, MaxInstances: *maxInstances,
		Zones: splitList(*zones)})
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	if err := srv.Run(ctx); err != nil {
		log.Error("stopped with an error", "err", err)
		return 1
	}
	return 0
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// regionPattern is the shape of AWS region names (us-east-1, eu-central-2, us-gov-west-1, ...).
var regionPattern = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)

func env(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("env", "Prints export lines for AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,\n"+
		"AWS_DEFAULT_REGION and AWS_ENDPOINT_URL, so that eval \"$(nubis env)\" points the aws CLI\n"+
		"and the AWS SDKs at the nubis server of the data directory.", stderr)
	dataDir := fs.String("data-dir", server.DefaultDataDir(), "`directory` of the server's store")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	ctx := context.Background()
	endpoint, region := "http://"+server.DefaultListen, server.DefaultRegion
	info, err := server.ReadRuntimeInfo(*dataDir)
	if err == nil {
		endpoint, region = info.Endpoint, info.Region
	} else {
		fmt.Fprintf(stderr, "nubis env: no server is running on %s; printing the default endpoint %s\n", *dataDir, endpoint)
	}
	key, err := server.AdminKey(ctx, *dataDir)
	if err != nil {
		fmt.Fprintf(stderr, "nubis env: %v\n", err)
		return 1
	}
	for _, kv := range [][2]string{
		{"AWS_ACCESS_KEY_ID", key.ID},
		{"AWS_SECRET_ACCESS_KEY", key.Secret},
		{"AWS_DEFAULT_REGION", region},
		{"AWS_REGION", region},
		{"AWS_ENDPOINT_URL", endpoint},
	} {
		fmt.Fprintf(stdout, "export %s=%s\n", kv[0], shellQuote(kv[1]))
	}
	return 0
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_./:") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

func addTrigger(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("add-trigger", "Creates an HTTP API with the route ANY /<function> and a stage \"default\" in front of a\n"+
		"function, and lets API Gateway invoke it, as the AWS console's \"Add trigger\" does; prints the\n"+
		"function's URL. It runs against the nubis server of the data directory.", stderr)
	function := fs.String("function", "", "the function's `name` or ARN")
	dataDir := fs.String("data-dir", server.DefaultDataDir(), "`directory` of the server's store")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if *function == "" {
		fmt.Fprintln(stderr, "nubis add-trigger: --function is required")
		return 2
	}
	info, err := server.ReadRuntimeInfo(*dataDir)
	if err != nil {
		fmt.Fprintf(stderr, "nubis add-trigger: no server is running on %s: %v\n", *dataDir, err)
		return 1
	}
	ctx := context.Background()
	key, err := server.AdminKey(ctx, *dataDir)
	if err != nil {
		fmt.Fprintf(stderr, "nubis add-trigger: %v\n", err)
		return 1
	}
	cfg := aws.Config{Region: info.Region, BaseEndpoint: aws.String(info.Endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(key.ID, key.Secret, "")}
	trigger, err := console.AddAPITrigger(ctx, cfg, *function)
	if err != nil {
		fmt.Fprintf(stderr, "nubis add-trigger: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "API %s\n%s\n", trigger.APIID, trigger.URL)
	return 0
}
