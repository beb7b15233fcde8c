package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/nubis/nubis/internal/ec2"
	"github.com/nubis/nubis/internal/image"
)

// images lists or builds the built-in EC2 images.
func images(args []string, stdout, stderr io.Writer) int {
	sub := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	fs := newFlagSet("images "+sub, "Lists the built-in EC2 images (nubis images list) or builds them from Debian\n"+
		"packages with debootstrap (nubis images build [NAME...]; all when no name is given).\n"+
		"Images are otherwise built on their first use by run-instances.", stderr)
	cache := fs.String("cache", image.DefaultCacheDir, "`directory` of built images")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	builtins := ec2.BuiltinImages()
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range builtins {
			if !yield(k) {
				return
			}
		}
	})
	// Debug shows debootstrap's own progress (Retrieving, Unpacking, Configuring...).
	b := &image.Builder{CacheDir: *cache, Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	switch sub {
	case "list":
		fmt.Fprintf(stdout, "%-22s %-36s %s\n", "IMAGE ID", "NAME", "BUILT")
		for _, k := range keys {
			id, name, _ := strings.Cut(k, " ")
			built := "no (built on first use, or: nubis images build " + name + ")"
			if _, err := os.Stat(b.Path(builtins[k])); err == nil {
				built = "yes, " + b.Path(builtins[k])
			}
			fmt.Fprintf(stdout, "%-22s %-36s %s\n", id, name, built)
		}
		return 0
	case "build":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		want := fs.Args()
		for _, k := range keys {
			id, name, _ := strings.Cut(k, " ")
			if len(want) > 0 && !slices.Contains(want, name) && !slices.Contains(want, id) {
				continue
			}
			want = slices.DeleteFunc(want, func(w string) bool { return w == name || w == id })
			fmt.Fprintf(stderr, "building %s (%s)...\n", name, id)
			path, err := b.Ensure(ctx, builtins[k])
			if err != nil {
				fmt.Fprintf(stderr, "nubis images build: %v\n", err)
				return 1
			}
			fmt.Fprintf(stdout, "%s %s %s\n", id, name, path)
		}
		if len(want) > 0 {
			fmt.Fprintf(stderr, "nubis images build: no built-in image named %s (see nubis images list)\n", strings.Join(want, ", "))
			return 2
		}
		return 0
	}
	fmt.Fprintf(stderr, "nubis images: unknown subcommand %q (list or build)\n", sub)
	return 2
}
