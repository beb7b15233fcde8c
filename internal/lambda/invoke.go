package lambda

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/runtimeapi"
	"github.com/nubis/nubis/internal/store"
)

// Payload limits of Invoke.
const (
	maxSyncPayload  = 6 << 20
	maxAsyncPayload = 256 << 10
)

var errServiceClosed = errors.New("lambda: shutting down")

// target is what an Invoke runs: a version of a function, and the function's record (for its
// reserved concurrency and resource policies).
type target struct {
	v  version
	fn function
}

// loadTarget looks up what an invocation of f runs; an alias's routing picks its version.
func (s *Service) loadTarget(ctx context.Context, r *awsproto.Request, f ref) (target, error) {
	var t target
	err := s.view(ctx, func(tx store.Tx) error {
		var err error
		if t.fn, err = s.requireFunction(tx, r, f); err != nil {
			return err
		}
		t.v, err = s.resolveRouted(tx, r, f, true)
		return err
	})
	return t, err
}

// target is the function version an Invoke request runs, which must be Active.
func (s *Service) target(ctx context.Context, r *awsproto.Request) (target, error) {
	f, err := s.parseRef(r, r.HTTP.PathValue("name"), r.HTTP.URL.Query().Get("Qualifier"))
	if err != nil {
		return target{}, err
	}
	t, err := s.loadTarget(ctx, r, f)
	if err != nil {
		return target{}, err
	}
	if st := t.v.Config.State; st != StateActive {
		return target{}, conflict("The operation cannot be performed at this time. The function is currently in the following state: %s", st)
	}
	return t, nil
}

func (s *Service) invoke(ctx context.Context, r *awsproto.Request) (int, any, error) {
	typ := r.HTTP.Header.Get("X-Amz-Invocation-Type")
	switch typ {
	case "", "RequestResponse", "Event", "DryRun":
	default:
		return 0, nil, validation(typ, "invocationType", "Member must satisfy enum value set: [Event, RequestResponse, DryRun]")
	}
	logType := r.HTTP.Header.Get("X-Amz-Log-Type")
	if logType != "" && logType != "None" && logType != "Tail" {
		return 0, nil, validation(logType, "logType", "Member must satisfy enum value set: [None, Tail]")
	}
	limit := maxSyncPayload
	if typ == "Event" {
		limit = maxAsyncPayload
	}
	payload := r.Body
	if len(payload) > limit {
		return 0, nil, awsproto.Errorf(413, "RequestEntityTooLargeException",
			"Request must be smaller than %d bytes for the InvokeFunction operation", limit)
	}
	if len(payload) == 0 {
		payload = []byte("{}")
	}
	if !json.Valid(payload) {
		return 0, nil, awsproto.Errorf(400, "InvalidRequestContentException", "Could not parse request body into json: the payload is not valid JSON")
	}
	t, err := s.target(ctx, r)
	if err != nil {
		return 0, nil, err
	}
	h := http.Header{"X-Amz-Executed-Version": {t.v.Config.Version}}
	switch typ {
	case "DryRun":
		return 204, awsproto.RawBody{ContentType: "application/json", Header: h}, nil
	case "Event":
		f, _ := s.parseRef(r, r.HTTP.PathValue("name"), r.HTTP.URL.Query().Get("Qualifier"))
		if err := s.enqueue(ctx, r.Caller.AccountID, t.v, f.qualifier, r.ID, payload); err != nil {
			return 0, nil, err
		}
		return 202, awsproto.RawBody{ContentType: "application/json", Header: http.Header{}}, nil
	}
	if s.cfg.Sandboxes == nil {
		return 0, nil, awsproto.Errorf(500, "ServiceException",
			"nubis cannot run functions here: sandboxes need nubis to run as root with runc installed")
	}
	out, err := s.run(context.WithoutCancel(ctx), r.Caller.AccountID, t, payload, r.HTTP.Header.Get("X-Amz-Client-Context"))
	if err != nil {
		return 0, nil, err
	}
	if out.result.Failed() {
		h.Set("X-Amz-Function-Error", "Unhandled")
	}
	if logType == "Tail" {
		h.Set("X-Amz-Log-Result", base64.StdEncoding.EncodeToString(out.tail))
	}
	return 200, awsproto.RawBody{ContentType: "application/json", Header: h, Body: out.result.Payload}, nil
}

type invocation struct {
	requestID string
	result    runtimeapi.Result
	tail      []byte
}

// run invokes a version once in an environment: warm if one is idle, else cold. It writes the
// START, END and REPORT lines and handles timeouts, crashes and memory exhaustion as Lambda does.
func (s *Service) run(ctx context.Context, account string, t target, payload []byte, clientContext string) (invocation, error) {
	return s.runID(ctx, account, t, payload, clientContext, uuid.NewString())
}

// runID is run with the request id given (an event's, the same on each of its attempts).
func (s *Service) runID(ctx context.Context, account string, t target, payload []byte, clientContext, reqID string) (invocation, error) {
	c := t.v.Config
	env, err := s.pool.acquire(ctx, t.v, account, t.fn.Reserved)
	var initErr *initFailure
	if errors.As(err, &initErr) {
		return invocation{requestID: reqID, result: initErr.payload(reqID)}, nil
	}
	if err != nil {
		return invocation{}, err
	}
	env.tail.reset()
	initDuration := env.initDuration
	cold := env.cold
	env.cold = false
	env.logs.printf("START RequestId: %s Version: %s\n", reqID, c.Version)
	env.tail.Write([]byte(fmt.Sprintf("START RequestId: %s Version: %s\n", reqID, c.Version)))
	timeout := time.Duration(c.Timeout) * time.Second
	start := time.Now()
	ictx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	go func() {
		select {
		case <-env.sb.Done():
			cancel()
		case <-ictx.Done():
		}
	}()
	res, err := env.api.Invoke(ictx, runtimeapi.Invocation{RequestID: reqID, Payload: payload, Deadline: start.Add(timeout),
		FunctionARN: c.FunctionArn, ClientContext: clientContext})
	duration := time.Since(start)
	status, healthy := "", true
	switch {
	case err == nil:
	case isDone(env.sb.Done()):
		healthy = false
		st, _ := env.sb.Stats(context.Background())
		if st.OOMKilled {
			status = "Status: error\tError Type: Runtime.OutOfMemory"
			res = platformError("Runtime.OutOfMemory", reqID, "Runtime exited with error: "+env.sb.ExitStatus().String())
		} else {
			status = "Status: error\tError Type: Runtime.ExitError"
			res = platformError("Runtime.ExitError", reqID, "Runtime exited with error: "+env.sb.ExitStatus().String())
		}
	case errors.Is(err, context.DeadlineExceeded):
		healthy = false
		status = "Status: timeout"
		res = platformError("Sandbox.Timedout", reqID, fmt.Sprintf("Task timed out after %.2f seconds", timeout.Seconds()))
	default:
		healthy = false
		status = "Status: error\tError Type: Runtime.Unknown"
		res = platformError("Runtime.Unknown", reqID, err.Error())
	}
	st, _ := env.sb.Stats(context.Background())
	if !healthy {
		env.sb.Kill(context.Background()) // a timeout or crash ends everything in the environment
	}
	env.drainOutput()
	if status == "Status: timeout" {
		line := fmt.Sprintf("%s %s Task timed out after %.2f seconds\n", time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), reqID, timeout.Seconds())
		env.logs.write([]byte(line))
		env.tail.Write([]byte(line))
	}
	report := reportLine(reqID, duration, c.MemorySize, st.MemoryMaxUsageBytes, cold, initDuration, status)
	for _, line := range []string{"END RequestId: " + reqID + "\n", report} {
		env.logs.write([]byte(line))
		env.tail.Write([]byte(line))
	}
	tail := env.tail.tail()
	s.pool.release(env, healthy)
	return invocation{requestID: reqID, result: res, tail: tail}, nil
}

func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// reportLine is Lambda's REPORT line: tab-separated, ending with a tab.
func reportLine(reqID string, d time.Duration, memMB int, maxUsed uint64, cold bool, initD time.Duration, status string) string {
	ms := float64(d.Microseconds()) / 1000
	billed := int64(math.Ceil(ms))
	if billed < 1 {
		billed = 1
	}
	used := (maxUsed + (1<<20 - 1)) >> 20
	line := fmt.Sprintf("REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %d ms\tMemory Size: %d MB\tMax Memory Used: %d MB\t",
		reqID, ms, billed, memMB, used)
	if cold {
		line += fmt.Sprintf("Init Duration: %.2f ms\t", float64(initD.Microseconds())/1000)
	}
	if status != "" {
		line += status + "\t"
	}
	return line + "\n"
}
