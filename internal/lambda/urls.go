package lambda

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

// Function URLs: an HTTP endpoint of its own for a function (unqualified) or one of its aliases,
// with AuthType NONE (anyone, once the function's policy allows lambda:InvokeFunctionUrl for
// FunctionUrlAuthType NONE) or AWS_IAM (SigV4-signed requests of the account), and CORS. The
// control plane is here; internal/lambdaurl serves the URLs. A URL config is kept per function
// and qualifier, with an index from its id (the URL's first label) to them for the data plane.

// URLCors is a function URL's CORS configuration, as the API renders it.
type URLCors struct {
	AllowCredentials bool     `json:"AllowCredentials,omitempty"`
	AllowHeaders     []string `json:"AllowHeaders,omitempty"`
	AllowMethods     []string `json:"AllowMethods,omitempty"`
	AllowOrigins     []string `json:"AllowOrigins,omitempty"`
	ExposeHeaders    []string `json:"ExposeHeaders,omitempty"`
	MaxAge           *int     `json:"MaxAge,omitempty"`
}

// urlConfig is a stored function URL configuration.
type urlConfig struct {
	ID         string   `json:"id"`
	Function   string   `json:"function"`
	Qualifier  string   `json:"qualifier,omitempty"` // an alias; "" for the function itself
	AuthType   string   `json:"authType"`
	Cors       *URLCors `json:"cors,omitempty"`
	InvokeMode string   `json:"invokeMode"`
	Created    string   `json:"created"`
	Modified   string   `json:"modified"`
}

// urlIndex is what a URL id leads to.
type urlIndex struct {
	Account   string `json:"account"`
	Region    string `json:"region"`
	Function  string `json:"function"`
	Qualifier string `json:"qualifier,omitempty"`
}

// URLTarget is what a function URL invokes, for the data plane.
type URLTarget struct {
	Account     string
	FunctionARN string // qualified with the alias, if the URL is an alias's
	AuthType    string
	Cors        *URLCors
}

var urlQualifierRE = regexp.MustCompile(`^[a-zA-Z0-9-_]{1,128}$`)

func urlIndexKey(id string) string { return "lambda-url/" + id }

func (s *Service) urlKey(r *awsproto.Request, function, qualifier string) string {
	if qualifier == "" {
		qualifier = "$LATEST" // no alias has that name
	}
	return s.prefix(r) + "url/" + function + "/" + qualifier
}

// urlRef reads the function and Qualifier of a URL call: the function itself ($LATEST counts as
// it) or an alias, never a version number.
func (s *Service) urlRef(r *awsproto.Request) (ref, error) {
	q := r.HTTP.URL.Query().Get("Qualifier")
	f, err := s.parseRef(r, r.HTTP.PathValue("name"), "")
	if err != nil {
		return f, err
	}
	if q != "" && f.qualifier != "" && q != f.qualifier {
		return f, invalidParam("The derived qualifier from the function name does not match the specified qualifier.")
	}
	if q == "" {
		q = f.qualifier
	}
	if q == "$LATEST" {
		q = ""
	}
	if q != "" && (!urlQualifierRE.MatchString(q) || digits.MatchString(q)) {
		return f, validation(q, "qualifier", `Member must satisfy regular expression pattern: (^\$LATEST$)|((?!^[0-9]+$)([a-zA-Z0-9-_]+))`)
	}
	f.qualifier = q
	return f, nil
}

type urlConfigOut struct {
	FunctionURL      string   `json:"FunctionUrl"`
	FunctionArn      string   `json:"FunctionArn"`
	AuthType         string   `json:"AuthType"`
	Cors             *URLCors `json:"Cors,omitempty"`
	CreationTime     string   `json:"CreationTime"`
	LastModifiedTime string   `json:"LastModifiedTime,omitempty"`
	InvokeMode       string   `json:"InvokeMode"`
}

func (s *Service) urlOut(r *awsproto.Request, u urlConfig, modified bool) urlConfigOut {
	arn := s.functionARN(r, u.Function)
	if u.Qualifier != "" {
		arn += ":" + u.Qualifier
	}
	out := urlConfigOut{FunctionURL: s.cfg.FunctionURL(u.ID), FunctionArn: arn, AuthType: u.AuthType, Cors: u.Cors,
		CreationTime: u.Created, InvokeMode: u.InvokeMode}
	if modified {
		out.LastModifiedTime = u.Modified
	}
	return out
}

type urlConfigInput struct {
	AuthType   *string
	Cors       *URLCors
	InvokeMode *string
}

func (in urlConfigInput) check(create bool) error {
	switch {
	case in.AuthType == nil && create:
		return validation("null", "authType", "Member must not be null")
	case in.AuthType != nil && *in.AuthType != "NONE" && *in.AuthType != "AWS_IAM":
		return validation(*in.AuthType, "authType", "Member must satisfy enum value set: [NONE, AWS_IAM]")
	case in.InvokeMode != nil && *in.InvokeMode == "RESPONSE_STREAM":
		return invalidParam("nubis does not stream function URL responses yet; use InvokeMode BUFFERED.")
	case in.InvokeMode != nil && *in.InvokeMode != "BUFFERED":
		return validation(*in.InvokeMode, "invokeMode", "Member must satisfy enum value set: [BUFFERED, RESPONSE_STREAM]")
	}
	if c := in.Cors; c != nil {
		if c.MaxAge != nil && (*c.MaxAge < 0 || *c.MaxAge > 86400) {
			return validation(*c.MaxAge, "cors.maxAge", "Member must have value between 0 and 86400")
		}
		if len(c.AllowMethods) > 6 {
			return validation(c.AllowMethods, "cors.allowMethods", "Member must have length less than or equal to 6")
		}
		for _, m := range c.AllowMethods {
			if m == "" || len(m) > 6 {
				return validation(c.AllowMethods, "cors.allowMethods", "Member must satisfy constraint: [Member must have length less than or equal to 6]")
			}
		}
		for _, o := range c.AllowOrigins {
			if o == "" || len(o) > 253 {
				return validation(c.AllowOrigins, "cors.allowOrigins", "Member must satisfy constraint: [Member must have length between 1 and 253]")
			}
		}
		if len(c.AllowOrigins) > 100 || len(c.AllowHeaders) > 100 || len(c.ExposeHeaders) > 100 {
			return validation("list", "cors", "Member must have length less than or equal to 100")
		}
	}
	return nil
}

// newURLID returns a function URL's id: 32 lowercase letters and digits, as AWS's.
func newURLID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 32)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func urlNotFound() error { return notFound("The resource you requested does not exist.") }

// loadURL reads the URL config of a function (which must exist) or one of its aliases.
func (s *Service) loadURL(tx store.Tx, r *awsproto.Request, f ref) (urlConfig, error) {
	if _, err := s.requireFunction(tx, r, ref{name: f.name}); err != nil {
		return urlConfig{}, err
	}
	u, ok, err := store.GetJSON[urlConfig](tx, s.urlKey(r, f.name, f.qualifier))
	if err == nil && !ok {
		err = urlNotFound()
	}
	return u, err
}

func (s *Service) createFunctionURLConfig(ctx context.Context, r *awsproto.Request) (int, any, error) {
	f, err := s.urlRef(r)
	if err != nil {
		return 0, nil, err
	}
	var in urlConfigInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if err := in.check(true); err != nil {
		return 0, nil, err
	}
	now := lastModified(s.now())
	u := urlConfig{Function: f.name, Qualifier: f.qualifier, AuthType: *in.AuthType, Cors: in.Cors,
		InvokeMode: "BUFFERED", Created: now, Modified: now}
	err = s.store.Update(ctx, func(tx store.Tx) error {
		if _, err := s.requireFunction(tx, r, ref{name: f.name}); err != nil {
			return err
		}
		if f.qualifier != "" {
			if _, ok, err := store.GetJSON[AliasConfiguration](tx, s.aliasKey(r, f.name, f.qualifier)); err != nil {
				return err
			} else if !ok {
				return functionNotFound(s.arn(r, f))
			}
		}
		if _, ok, err := store.GetJSON[urlConfig](tx, s.urlKey(r, f.name, f.qualifier)); err != nil {
			return err
		} else if ok {
			return conflict("Failed to create function url config for [functionArn = %s]. Error message:  FunctionUrlConfig exists for this Lambda function", s.arn(r, f))
		}
		idx, err := jsonBytes(urlIndex{Account: r.Caller.AccountID, Region: s.cfg.Region, Function: f.name, Qualifier: f.qualifier})
		if err != nil {
			return err
		}
		for {
			u.ID = newURLID()
			if err := tx.Create(urlIndexKey(u.ID), idx); !errors.Is(err, store.ErrExists) {
				if err != nil {
					return err
				}
				break
			}
		}
		return store.PutJSON(tx, s.urlKey(r, f.name, f.qualifier), u)
	})
	if err != nil {
		return 0, nil, err
	}
	return 201, s.urlOut(r, u, false), nil
}

func (s *Service) getFunctionURLConfig(ctx context.Context, r *awsproto.Request) (int, any, error) {
	f, err := s.urlRef(r)
	if err != nil {
		return 0, nil, err
	}
	var u urlConfig
	err = s.view(ctx, func(tx store.Tx) error {
		u, err = s.loadURL(tx, r, f)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	return 200, s.urlOut(r, u, true), nil
}

func (s *Service) updateFunctionURLConfig(ctx context.Context, r *awsproto.Request) (int, any, error) {
	f, err := s.urlRef(r)
	if err != nil {
		return 0, nil, err
	}
	var in urlConfigInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if err := in.check(false); err != nil {
		return 0, nil, err
	}
	var u urlConfig
	err = s.store.Update(ctx, func(tx store.Tx) error {
		if u, err = s.loadURL(tx, r, f); err != nil {
			return err
		}
		if in.AuthType != nil {
			u.AuthType = *in.AuthType
		}
		if in.Cors != nil {
			u.Cors = in.Cors
		}
		u.Modified = lastModified(s.now())
		return store.PutJSON(tx, s.urlKey(r, f.name, f.qualifier), u)
	})
	if err != nil {
		return 0, nil, err
	}
	return 200, s.urlOut(r, u, true), nil
}

func (s *Service) deleteFunctionURLConfig(ctx context.Context, r *awsproto.Request) (int, any, error) {
	f, err := s.urlRef(r)
	if err != nil {
		return 0, nil, err
	}
	err = s.store.Update(ctx, func(tx store.Tx) error {
		u, err := s.loadURL(tx, r, f)
		if err != nil {
			return err
		}
		return s.deleteURLTx(tx, r, u)
	})
	if err != nil {
		return 0, nil, err
	}
	return 204, nil, nil
}

func (s *Service) deleteURLTx(tx store.Tx, r *awsproto.Request, u urlConfig) error {
	if err := tx.Delete(urlIndexKey(u.ID)); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err := tx.Delete(s.urlKey(r, u.Function, u.Qualifier)); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// deleteURLsTx removes a function's URLs: all of them (alias ""), or the one of an alias.
func (s *Service) deleteURLsTx(tx store.Tx, r *awsproto.Request, function, alias string) error {
	prefix := s.prefix(r) + "url/" + function + "/"
	if alias != "" {
		prefix = s.urlKey(r, function, alias)
	}
	kvs, err := tx.List(prefix, "", 0)
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		var u urlConfig
		if err := json.Unmarshal(kv.Value, &u); err != nil {
			return err
		}
		if alias != "" && u.Qualifier != alias {
			continue
		}
		if err := s.deleteURLTx(tx, r, u); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) listFunctionURLConfigs(ctx context.Context, r *awsproto.Request) (int, any, error) {
	f, err := s.parseRef(r, r.HTTP.PathValue("name"), "")
	if err != nil {
		return 0, nil, err
	}
	marker, max, err := pagination(r.HTTP.URL.Query())
	if err != nil {
		return 0, nil, err
	}
	if max > 50 {
		return 0, nil, validation(max, "maxItems", "Member must have value between 1 and 50")
	}
	out := struct {
		FunctionURLConfigs []urlConfigOut `json:"FunctionUrlConfigs"`
		NextMarker         string         `json:"NextMarker,omitempty"`
	}{FunctionURLConfigs: []urlConfigOut{}}
	prefix := s.prefix(r) + "url/" + f.name + "/"
	after, err := afterMarker(marker, prefix)
	if err != nil {
		return 0, nil, err
	}
	err = s.view(ctx, func(tx store.Tx) error {
		if _, err := s.requireFunction(tx, r, ref{name: f.name}); err != nil {
			return err
		}
		kvs, err := tx.List(prefix, after, max+1)
		if err != nil {
			return err
		}
		for i, kv := range kvs {
			if i == max {
				out.NextMarker = encodeMarker(strings.TrimPrefix(kvs[i-1].Key, prefix))
				break
			}
			var u urlConfig
			if err := json.Unmarshal(kv.Value, &u); err != nil {
				return err
			}
			out.FunctionURLConfigs = append(out.FunctionURLConfigs, s.urlOut(r, u, true))
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return 200, out, nil
}

// LookupURL returns what the function URL with this id invokes; an error wrapping
// errdefs.ErrNotFound if there is none.
func (s *Service) LookupURL(ctx context.Context, id string) (URLTarget, error) {
	var t URLTarget
	err := s.view(ctx, func(tx store.Tx) error {
		idx, ok, err := store.GetJSON[urlIndex](tx, urlIndexKey(id))
		if err != nil {
			return err
		}
		if !ok || idx.Region != s.cfg.Region {
			return fmt.Errorf("function URL %s: %w", id, store.ErrNotFound)
		}
		r := &awsproto.Request{Caller: awsproto.Caller{AccountID: idx.Account}}
		u, ok, err := store.GetJSON[urlConfig](tx, s.urlKey(r, idx.Function, idx.Qualifier))
		if err != nil {
			return err
		}
		if !ok || u.ID != id {
			return fmt.Errorf("function URL %s: %w", id, store.ErrNotFound)
		}
		t = URLTarget{Account: idx.Account, FunctionARN: s.arn(r, ref{name: u.Function, qualifier: u.Qualifier}),
			AuthType: u.AuthType, Cors: u.Cors}
		return nil
	})
	return t, err
}

// InvokeURL invokes the function of a function URL with an event: for AuthType NONE its policy
// must allow lambda:InvokeFunctionUrl to everyone (else ErrNotPermitted); AWS_IAM requests, which
// the data plane has checked are signed by the account, need no policy.
func (s *Service) InvokeURL(ctx context.Context, t URLTarget, event []byte) ([]byte, bool, error) {
	r := &awsproto.Request{Caller: awsproto.Caller{AccountID: t.Account}}
	f, err := s.parseRef(r, t.FunctionARN, "")
	if err != nil {
		return nil, false, err
	}
	tg, err := s.loadTarget(ctx, r, f)
	if err != nil {
		return nil, false, err
	}
	if t.AuthType == "NONE" && !tg.fn.Policies[f.qualifier].allowsURL(t.AuthType) {
		return nil, false, ErrNotPermitted
	}
	return s.runAs(ctx, t.Account, tg, event)
}
