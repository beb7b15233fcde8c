package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/nubis/nubis/internal/server"
	"github.com/nubis/nubis/internal/server/servertest"
)

// target is a benchmark's performance target, from the issue that added it. A zero field is no
// target.
type target struct {
	name     string // benchmark function (or sub-benchmark: "BenchmarkThroughput/memory=128MB")
	p50, p99 time.Duration
	rate     float64 // minimum invocations per second, with no errors
	versus   string  // a benchmark of the same work by another implementation, printed beside it
	// minus, when set, makes p50 a target on the difference of p50s: name's minus this one's (an
	// overhead measured in the same run, such as API Gateway's over a direct Invoke).
	minus string
}

// targets are compared with the results after the run; they never fail it.
var targets = []target{
	{name: "BenchmarkDescribeKeyPairs", p50: time.Millisecond, p99: 5 * time.Millisecond},
	{name: "BenchmarkInvokeWarm/memory=128MB", p50: 2 * time.Millisecond, p99: 10 * time.Millisecond, versus: "BenchmarkInvokeWarmRIE"},
	{name: "BenchmarkColdStart/memory=128MB", p50: 150 * time.Millisecond, versus: "BenchmarkColdStartRIE"},
	{name: "BenchmarkThroughput/memory=128MB", rate: 1000, versus: "BenchmarkThroughputRIE"},
	{name: "BenchmarkThroughput/memory=1769MB", rate: 1000, versus: "BenchmarkThroughputRIE"},
	{name: "BenchmarkAPIGatewayOverhead/memory=1769MB/api", p50: 300 * time.Microsecond,
		minus: "BenchmarkAPIGatewayOverhead/memory=1769MB/invoke"},
	{name: "BenchmarkAPIGatewayLoad/wrk", rate: 2000, versus: "BenchmarkAPIGatewayLoad/invoke"},
	{name: "BenchmarkInstanceLaunch", p50: 2 * time.Second},
	{name: "BenchmarkInstanceStopStart/stop", p50: time.Second},
	{name: "BenchmarkInstanceStopStart/start", p50: time.Second},
}

// baseline is the benchmark the others are compared with.
const baseline = "BenchmarkBaselineHealth"

// stats are a benchmark's results: latency percentiles and, for a throughput benchmark, its rate
// and error count.
type stats struct {
	p50, p99, max, mean time.Duration
	rate                float64 // calls per second
	errors              int
}

// results holds the latest stats of each benchmark that ran, by name.
var results = map[string]stats{}

// tables are printed after the summary: what a benchmark measured beyond its metrics.
var tables []string

// atExit runs after the benchmarks, before the summary (to remove what several benchmarks share).
var atExit []func()

func TestMain(m *testing.M) {
	code := m.Run()
	for _, f := range atExit {
		f()
	}
	summarize(os.Stdout)
	os.Exit(code)
}

// summarize prints each target that was measured beside its result and the baseline.
func summarize(w io.Writer) {
	base, haveBase := results[baseline]
	for _, t := range targets {
		r, ok := results[t.name]
		if !ok {
			continue
		}
		var parts []string
		if t.minus != "" {
			m, ok := results[t.minus]
			if !ok {
				continue
			}
			d := r.p50 - m.p50
			fmt.Fprintf(w, "target %s: p50 %s − %s p50 %s = %s (≤ %s: %s)\n", t.name, ms(r.p50), t.minus, ms(m.p50), ms(d),
				ms(t.p50), verdict(d, t.p50))
			continue
		}
		if t.p50 > 0 {
			parts = append(parts, fmt.Sprintf("p50 %s (≤ %s: %s)", ms(r.p50), ms(t.p50), verdict(r.p50, t.p50)))
		}
		if t.p99 > 0 {
			parts = append(parts, fmt.Sprintf("p99 %s (≤ %s: %s)", ms(r.p99), ms(t.p99), verdict(r.p99, t.p99)))
		}
		if t.rate > 0 {
			v := "met"
			if r.rate < t.rate || r.errors > 0 {
				v = "MISSED"
			}
			parts = append(parts, fmt.Sprintf("%.0f/s with %d errors (≥ %.0f/s, none: %s)", r.rate, r.errors, t.rate, v))
		}
		fmt.Fprintf(w, "target %s: %s", t.name, strings.Join(parts, ", "))
		if haveBase && t.p99 > 0 {
			fmt.Fprintf(w, "; baseline p50 %s, p99 %s", ms(base.p50), ms(base.p99))
		}
		if v, ok := results[t.versus]; ok {
			if t.rate > 0 {
				fmt.Fprintf(w, "; %s %.0f/s with %d errors", t.versus, v.rate, v.errors)
			} else {
				fmt.Fprintf(w, "; %s p50 %s, p99 %s", t.versus, ms(v.p50), ms(v.p99))
			}
		}
		fmt.Fprintln(w)
	}
	for _, t := range tables {
		fmt.Fprintln(w)
		fmt.Fprint(w, t)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

func verdict(got, want time.Duration) string {
	if got <= want {
		return "met"
	}
	return "MISSED"
}

// oneConnClient returns an HTTP client that may hold one connection to the server, and the count
// of connections it has opened.
func oneConnClient() (*http.Client, *atomic.Int32) {
	var dials atomic.Int32
	var d net.Dialer
	tr := &http.Transport{
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return d.DialContext(ctx, network, addr)
		},
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, &dials
}

// sdkConfig returns an SDK configuration for s whose HTTP client may hold one connection, and the
// count of connections it has opened.
func sdkConfig(b *testing.B, s *servertest.Server) (aws.Config, *atomic.Int32) {
	hc, dials := oneConnClient()
	cfg := s.Config(b, nil)
	cfg.HTTPClient = hideWriteTo{hc}
	return cfg, dials
}

// hideWriteTo works around a race in smithy-go that makes the SDK drop about one connection in
// twenty on loopback. The SDK closes the request body once the response is in, and its body's
// WriteTo then returns io.EOF, against the io.WriterTo contract; when net/http is still making its
// final read of the body after sending it, it takes that for a write error and closes the
// connection. Hiding WriteTo leaves Read, which returns io.EOF after Close as a reader should.
type hideWriteTo struct{ *http.Client }

func (c hideWriteTo) Do(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = struct{ io.ReadCloser }{r.Body}
	}
	return c.Client.Do(r)
}

// measure calls op once untimed, which opens the connection, then b.N times, timing each call, and
// reports the latency percentiles. It fails if a call fails or a second connection was opened.
func measure(b *testing.B, dials *atomic.Int32, op func() error) {
	b.Helper()
	if err := op(); err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		err := op()
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
	}
	if n := dials.Load(); n != 1 {
		b.Fatalf("%d connections opened, want 1", n)
	}
	s := latencyStats(lat)
	results[b.Name()] = s
	for _, m := range latencyMetrics("", s) {
		b.ReportMetric(m.v, m.unit)
	}
}

// latencyStats sorts lat and returns its percentiles, maximum and mean.
func latencyStats(lat []time.Duration) stats {
	if len(lat) == 0 {
		return stats{}
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	return stats{p50: percentile(lat, 50), p99: percentile(lat, 99), max: lat[len(lat)-1],
		mean: sum / time.Duration(len(lat))}
}

// metric is one of a benchmark's metrics, as b.ReportMetric takes it.
type metric struct {
	v    float64
	unit string
}

// latencyMetrics are s as the metrics <prefix>p50-ms, <prefix>p99-ms, <prefix>max-ms and
// <prefix>mean-ms.
func latencyMetrics(prefix string, s stats) []metric {
	return []metric{{msf(s.p50), prefix + "p50-ms"}, {msf(s.p99), prefix + "p99-ms"},
		{msf(s.max), prefix + "max-ms"}, {msf(s.mean), prefix + "mean-ms"}}
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentile returns the nearest-rank p-th percentile of sorted.
func percentile(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}

// BenchmarkBaselineHealth is the baseline: an unsigned GET of the health endpoint, which reads no
// store, over one connection with plain net/http.
func BenchmarkBaselineHealth(b *testing.B) {
	s := servertest.Start(b, "")
	hc, dials := oneConnClient()
	url := s.Endpoint() + server.HealthPath
	measure(b, dials, func() error {
		resp, err := hc.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("health: %s", resp.Status)
		}
		return nil
	})
}
