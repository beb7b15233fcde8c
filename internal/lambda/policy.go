package lambda

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/glob"
	"github.com/nubis/nubis/internal/store"
)

// Resource-based policies: AddPermission, RemovePermission and GetPolicy. A function (or one of its
// versions or aliases, by Qualifier) has a policy whose statements allow principals, such as
// apigateway.amazonaws.com for a SourceArn, to invoke it. Policies are kept on the function's
// record, per qualifier ("" for the unqualified function), so they survive restarts and go with
// the function when it is deleted.

// Statement is one statement of a function's policy, rendered as AWS renders it.
type Statement struct {
	Sid       string                       `json:"Sid"`
	Effect    string                       `json:"Effect"`
	Principal map[string]string            `json:"Principal"`
	Action    string                       `json:"Action"`
	Resource  string                       `json:"Resource"`
	Condition map[string]map[string]string `json:"Condition,omitempty"`
}

type policy struct {
	Statements []Statement `json:"statements"`
	RevisionID string      `json:"revisionId"`
}

var (
	sidPattern    = regexp.MustCompile(`^[a-zA-Z0-9-_]{1,100}$`)
	actionPattern = regexp.MustCompile(`^(lambda:[*]|lambda:[a-zA-Z]+|[*])$`)
	accountRE     = regexp.MustCompile(`^\d{12}$`)
)

type addPermissionInput struct {
	StatementId   string
	Action        string
	Principal     string
	SourceArn     string
	SourceAccount string
	RevisionId    string
	// FunctionUrlAuthType limits a lambda:InvokeFunctionUrl permission to URLs of that AuthType.
	FunctionUrlAuthType string
	// InvokedViaFunctionUrl limits a lambda:InvokeFunction permission to invocations through the
	// function's URL.
	InvokedViaFunctionUrl bool
}

// principalOf renders a principal as AWS does: a service, an account (as its root ARN) or "*".
func principalOf(p string) map[string]string {
	switch {
	case strings.HasSuffix(p, ".amazonaws.com"):
		return map[string]string{"Service": p}
	case accountRE.MatchString(p):
		return map[string]string{"AWS": "arn:aws:iam::" + p + ":root"}
	}
	return map[string]string{"AWS": p}
}

func (s *Service) addPermission(ctx context.Context, r *awsproto.Request) (int, any, error) {
	f, err := s.parseRef(r, r.HTTP.PathValue("name"), r.HTTP.URL.Query().Get("Qualifier"))
	if err != nil {
		return 0, nil, err
	}
	var in addPermissionInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	switch {
	case !sidPattern.MatchString(in.StatementId):
		return 0, nil, validation(in.StatementId, "statementId", "Member must satisfy regular expression pattern: ([a-zA-Z0-9-_]+)")
	case !actionPattern.MatchString(in.Action):
		return 0, nil, validation(in.Action, "action", "Member must satisfy regular expression pattern: (lambda:[*]|lambda:[a-zA-Z]+|[*])")
	case in.Principal == "" || strings.ContainsAny(in.Principal, " \t\n"):
		return 0, nil, validation(in.Principal, "principal", `Member must satisfy regular expression pattern: [^\s]+`)
	case in.SourceAccount != "" && !accountRE.MatchString(in.SourceAccount):
		return 0, nil, validation(in.SourceAccount, "sourceAccount", `Member must satisfy regular expression pattern: \d{12}`)
	case in.FunctionUrlAuthType != "" && in.FunctionUrlAuthType != "NONE" && in.FunctionUrlAuthType != "AWS_IAM":
		return 0, nil, validation(in.FunctionUrlAuthType, "functionUrlAuthType", "Member must satisfy enum value set: [NONE, AWS_IAM]")
	case in.SourceArn != "" && !strings.HasPrefix(in.SourceArn, "arn:"):
		return 0, nil, validation(in.SourceArn, "sourceArn", `Member must satisfy regular expression pattern: arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\-])+:([a-z]{2}(-gov)?-[a-z]+-\d{1})?:(\d{12})?:(.*)`)
	}
	st := Statement{Sid: in.StatementId, Effect: "Allow", Principal: principalOf(in.Principal), Action: in.Action,
		Resource: s.arn(r, f)}
	if in.SourceArn != "" || in.SourceAccount != "" || in.FunctionUrlAuthType != "" || in.InvokedViaFunctionUrl {
		st.Condition = map[string]map[string]string{}
		if in.SourceArn != "" {
			st.Condition["ArnLike"] = map[string]string{"AWS:SourceArn": in.SourceArn}
		}
		if in.SourceAccount != "" || in.FunctionUrlAuthType != "" {
			st.Condition["StringEquals"] = map[string]string{}
		}
		if in.SourceAccount != "" {
			st.Condition["StringEquals"]["AWS:SourceAccount"] = in.SourceAccount
		}
		if in.FunctionUrlAuthType != "" {
			st.Condition["StringEquals"]["lambda:FunctionUrlAuthType"] = in.FunctionUrlAuthType
		}
		if in.InvokedViaFunctionUrl {
			st.Condition["Bool"] = map[string]string{"lambda:InvokedViaFunctionUrl": "true"}
		}
	}
	err = s.store.Update(ctx, func(tx store.Tx) error {
		fn, err := s.requireFunction(tx, r, ref{name: f.name})
		if err != nil {
			return err
		}
		if f.qualifier != "" {
			if _, err := s.resolve(tx, r, f); err != nil {
				return err
			}
		}
		p := fn.Policies[f.qualifier]
		if in.RevisionId != "" && in.RevisionId != p.RevisionID {
			return preconditionFailed("GetPolicy")
		}
		for _, old := range p.Statements {
			if old.Sid == st.Sid {
				return conflict("The statement id (%s) provided already exists. Please specify a new statement id, or remove the existing statement.", st.Sid)
			}
		}
		p.Statements = append(p.Statements, st)
		p.RevisionID = newRevision()
		if fn.Policies == nil {
			fn.Policies = map[string]policy{}
		}
		fn.Policies[f.qualifier] = p
		return store.PutJSON(tx, s.functionKey(r, f.name), fn)
	})
	if err != nil {
		return 0, nil, err
	}
	b, _ := json.Marshal(st)
	return 201, map[string]string{"Statement": string(b)}, nil
}

func (s *Service) removePermission(ctx context.Context, r *awsproto.Request) (int, any, error) {
	f, err := s.parseRef(r, r.HTTP.PathValue("name"), r.HTTP.URL.Query().Get("Qualifier"))
	if err != nil {
		return 0, nil, err
	}
	sid, revision := r.HTTP.PathValue("sid"), r.HTTP.URL.Query().Get("RevisionId")
	err = s.updateFunction(ctx, r, f.name, func(fn *function) error {
		p := fn.Policies[f.qualifier]
		if revision != "" && revision != p.RevisionID {
			return preconditionFailed("GetPolicy")
		}
		kept := p.Statements[:0:0]
		for _, st := range p.Statements {
			if st.Sid != sid {
				kept = append(kept, st)
			}
		}
		if len(kept) == len(p.Statements) {
			return notFound("Statement %s is not found in resource policy.", sid)
		}
		p.Statements, p.RevisionID = kept, newRevision()
		fn.Policies[f.qualifier] = p
		if len(kept) == 0 {
			delete(fn.Policies, f.qualifier)
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return 204, nil, nil
}

func (s *Service) getPolicy(ctx context.Context, r *awsproto.Request) (int, any, error) {
	f, err := s.parseRef(r, r.HTTP.PathValue("name"), r.HTTP.URL.Query().Get("Qualifier"))
	if err != nil {
		return 0, nil, err
	}
	fn, err := s.loadFunction(ctx, r, f.name)
	if err != nil {
		return 0, nil, err
	}
	p, ok := fn.Policies[f.qualifier]
	if !ok || len(p.Statements) == 0 {
		return 0, nil, notFound("The resource you requested does not exist.")
	}
	doc, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Id": "default", "Statement": p.Statements})
	return 200, map[string]string{"Policy": string(doc), "RevisionId": p.RevisionID}, nil
}

// ErrNotPermitted is returned by InvokeAs when the function's policy does not allow the caller.
var ErrNotPermitted = errors.New("lambda: the function's resource policy does not allow this invocation")

// allows reports whether a policy lets service principal invoke with sourceArn.
func (p policy) allows(principal, sourceArn string) bool {
	for _, st := range p.Statements {
		if st.Effect != "Allow" || st.Action != "lambda:InvokeFunction" && st.Action != "lambda:*" && st.Action != "*" {
			continue
		}
		if st.Principal["Service"] != principal && st.Principal["AWS"] != "*" || urlOnly(st.Condition) {
			continue
		}
		if pattern, ok := st.Condition["ArnLike"]["AWS:SourceArn"]; ok && !arnLike(pattern, sourceArn) {
			continue
		}
		return true
	}
	return false
}

// arnLike matches an ARN against an IAM ArnLike pattern: * matches any run of characters and ?
// one character, within the whole ARN.
func arnLike(pattern, s string) bool { return glob.Match(pattern, s) }

// InvokeAs invokes a function synchronously on behalf of an AWS service (API Gateway's
// apigateway.amazonaws.com), as Lambda does for service integrations: the function's policy for
// the qualifier in functionARN must allow principal with sourceArn, else ErrNotPermitted. It
// returns the function's result payload and whether that is a function error. Throttling is an
// *awsproto.Error with status 429.
func (s *Service) InvokeAs(ctx context.Context, account, functionARN, principal, sourceArn string, payload []byte) ([]byte, bool, error) {
	r := &awsproto.Request{Caller: awsproto.Caller{AccountID: account}}
	f, err := s.parseRef(r, functionARN, "")
	if err != nil {
		return nil, false, err
	}
	t, err := s.loadTarget(ctx, r, f)
	if err != nil {
		return nil, false, err
	}
	if !t.fn.Policies[f.qualifier].allows(principal, sourceArn) {
		return nil, false, ErrNotPermitted
	}
	return s.runAs(ctx, account, t, payload)
}

// runAs runs a synchronous invocation a service asked for.
func (s *Service) runAs(ctx context.Context, account string, t target, payload []byte) ([]byte, bool, error) {
	if t.v.Config.State != StateActive {
		return nil, false, conflict("The function is currently in the following state: %s", t.v.Config.State)
	}
	if s.cfg.Sandboxes == nil {
		return nil, false, errors.New("lambda: this host cannot run functions")
	}
	out, err := s.run(ctx, account, t, payload, "")
	if err != nil {
		return nil, false, err
	}
	return out.result.Payload, out.result.Failed(), nil
}

// allowsURL reports whether a policy lets everyone invoke the function through its URL of
// authType: both lambda:InvokeFunctionUrl and lambda:InvokeFunction, as AWS requires of function
// URLs since October 2025.
func (p policy) allowsURL(authType string) bool {
	return p.allowsEveryone("lambda:InvokeFunctionUrl", authType) && p.allowsEveryone("lambda:InvokeFunction", authType)
}

func (p policy) allowsEveryone(action, authType string) bool {
	for _, st := range p.Statements {
		if st.Effect != "Allow" || st.Action != action && st.Action != "lambda:*" && st.Action != "*" || st.Principal["AWS"] != "*" {
			continue
		}
		if urlConditionsHold(st.Condition, authType) {
			return true
		}
	}
	return false
}

// urlConditionsHold reports whether a statement's conditions hold for an anonymous request
// through a function URL of authType: the only keys such a request has are
// lambda:FunctionUrlAuthType and lambda:InvokedViaFunctionUrl.
func urlConditionsHold(cond map[string]map[string]string, authType string) bool {
	for op, kv := range cond {
		for k, v := range kv {
			switch {
			case op == "StringEquals" && k == "lambda:FunctionUrlAuthType" && v == authType:
			case op == "Bool" && k == "lambda:InvokedViaFunctionUrl" && v == "true":
			default:
				return false
			}
		}
	}
	return true
}

// urlOnly reports whether a statement's conditions hold only for requests through a function URL.
func urlOnly(cond map[string]map[string]string) bool {
	_, a := cond["StringEquals"]["lambda:FunctionUrlAuthType"]
	_, b := cond["Bool"]["lambda:InvokedViaFunctionUrl"]
	return a || b
}
