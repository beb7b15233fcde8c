package lambda

import (
	"context"
	"errors"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

type aliasInput struct {
	Name            string
	FunctionVersion *string
	Description     *string
	RoutingConfig   *RoutingConfig
	RevisionId      string
}

func (s *Service) aliasARN(r *awsproto.Request, fn, alias string) string {
	return s.functionARN(r, fn) + ":" + alias
}

// checkAliasTarget checks that an alias's versions exist and its routing is one Lambda accepts.
func (s *Service) checkAliasTarget(tx store.Tx, r *awsproto.Request, fn string, a AliasConfiguration) error {
	check := func(ver string) error {
		if ver != "$LATEST" && !digits.MatchString(ver) {
			return validation(ver, "functionVersion", `Member must satisfy regular expression pattern: (\$LATEST|[0-9]+)`)
		}
		if _, ok, err := store.GetJSON[version](tx, s.versionKey(r, fn, ver)); err != nil || !ok {
			if err == nil {
				err = functionNotFound(s.functionARN(r, fn) + ":" + ver)
			}
			return err
		}
		return nil
	}
	if err := check(a.FunctionVersion); err != nil {
		return err
	}
	w := a.RoutingConfig.weights()
	if len(w) > 1 {
		return invalidParam("Number of items in AdditionalVersionWeights cannot be greater than 1")
	}
	for ver, weight := range w {
		if err := check(ver); err != nil {
			return err
		}
		if ver == a.FunctionVersion {
			return invalidParam("Invalid function version %s. Function version %s is already included in routing configuration.", ver, ver)
		}
		if ver == "$LATEST" || a.FunctionVersion == "$LATEST" {
			return invalidParam("$LATEST is not supported for an alias pointing to more than 1 version")
		}
		if weight < 0 || weight > 1 {
			return validation(weight, "routingConfig.additionalVersionWeights", "Map values must be between 0.0 and 1.0")
		}
	}
	return nil
}

func (s *Service) createAlias(ctx context.Context, r *awsproto.Request) (int, any, error) {
	f, err := s.parseRef(r, r.HTTP.PathValue("name"), "")
	if err != nil {
		return 0, nil, err
	}
	var in aliasInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if err := validateAliasName(in.Name); err != nil {
		return 0, nil, err
	}
	if in.FunctionVersion == nil {
		return 0, nil, validation("null", "functionVersion", "Member must not be null")
	}
	a := AliasConfiguration{AliasArn: s.aliasARN(r, f.name, in.Name), Name: in.Name, FunctionVersion: *in.FunctionVersion,
		RoutingConfig: in.RoutingConfig, RevisionID: newRevision()}
	set(&a.Description, in.Description)
	if err := validateDescription(a.Description); err != nil {
		return 0, nil, err
	}
	err = s.store.Update(ctx, func(tx store.Tx) error {
		if _, err := s.requireFunction(tx, r, f); err != nil {
			return err
		}
		if err := s.checkAliasTarget(tx, r, f.name, a); err != nil {
			return err
		}
		b, err := jsonBytes(a)
		if err != nil {
			return err
		}
		if err := tx.Create(s.aliasKey(r, f.name, a.Name), b); errors.Is(err, store.ErrExists) {
			return conflict("Alias already exists: %s", a.AliasArn)
		} else {
			return err
		}
	})
	if err != nil {
		return 0, nil, err
	}
	return 201, a, nil
}

func (s *Service) loadAlias(tx store.Tx, r *awsproto.Request, f ref, name string) (AliasConfiguration, error) {
	if _, err := s.requireFunction(tx, r, f); err != nil {
		return AliasConfiguration{}, err
	}
	a, ok, err := store.GetJSON[AliasConfiguration](tx, s.aliasKey(r, f.name, name))
	if err == nil && !ok {
		err = notFound("Alias not found: %s", s.aliasARN(r, f.name, name))
	}
	return a, err
}

func (s *Service) getAlias(ctx context.Context, r *awsproto.Request) (int, any, error) {
	f, err := s.parseRef(r, r.HTTP.PathValue("name"), "")
	if err != nil {
		return 0, nil, err
	}
	var a AliasConfiguration
	err = s.view(ctx, func(tx store.Tx) error {
		a, err = s.loadAlias(tx, r, f, r.HTTP.PathValue("alias"))
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	return 200, a, nil
}

func (s *Service) updateAlias(ctx context.Context, r *awsproto.Request) (int, any, error) {
	f, err := s.parseRef(r, r.HTTP.PathValue("name"), "")
	if err != nil {
		return 0, nil, err
	}
	var in aliasInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	var a AliasConfiguration
	err = s.store.Update(ctx, func(tx store.Tx) error {
		a, err = s.loadAlias(tx, r, f, r.HTTP.PathValue("alias"))
		if err != nil {
			return err
		}
		if in.RevisionId != "" && in.RevisionId != a.RevisionID {
			return preconditionFailed("GetFunction/GetAlias")
		}
		set(&a.FunctionVersion, in.FunctionVersion)
		set(&a.Description, in.Description)
		if in.RoutingConfig != nil {
			a.RoutingConfig = in.RoutingConfig
		}
		if err := validateDescription(a.Description); err != nil {
			return err
		}
		if err := s.checkAliasTarget(tx, r, f.name, a); err != nil {
			return err
		}
		a.RevisionID = newRevision()
		return store.PutJSON(tx, s.aliasKey(r, f.name, a.Name), a)
	})
	if err != nil {
		return 0, nil, err
	}
	return 200, a, nil
}

// deleteAlias deletes an alias; deleting one that does not exist succeeds, as in Lambda.
func (s *Service) deleteAlias(ctx context.Context, r *awsproto.Request) (int, any, error) {
	f, err := s.parseRef(r, r.HTTP.PathValue("name"), "")
	if err != nil {
		return 0, nil, err
	}
	err = s.store.Update(ctx, func(tx store.Tx) error {
		alias := r.HTTP.PathValue("alias")
		err := tx.Delete(s.aliasKey(r, f.name, alias))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		// Its URL and its policy go with it: an alias made again with the name starts bare.
		if fn, err := s.requireFunction(tx, r, ref{name: f.name}); err == nil && (fn.Policies[alias].Statements != nil || fn.EventInvoke[alias] != (eventInvokeConfig{})) {
			delete(fn.Policies, alias)
			delete(fn.EventInvoke, alias)
			if err := store.PutJSON(tx, s.functionKey(r, f.name), fn); err != nil {
				return err
			}
		}
		return s.deleteURLsTx(tx, r, f.name, alias)
	})
	if err != nil {
		return 0, nil, err
	}
	return 204, nil, nil
}

type listAliasesOutput struct {
	Aliases    []AliasConfiguration `json:"Aliases"`
	NextMarker string               `json:"NextMarker,omitempty"`
}

func (s *Service) listAliases(ctx context.Context, r *awsproto.Request) (int, any, error) {
	f, err := s.parseRef(r, r.HTTP.PathValue("name"), "")
	if err != nil {
		return 0, nil, err
	}
	q := r.HTTP.URL.Query()
	marker, max, err := pagination(q)
	if err != nil {
		return 0, nil, err
	}
	out := listAliasesOutput{Aliases: []AliasConfiguration{}}
	err = s.view(ctx, func(tx store.Tx) error {
		if _, err := s.requireFunction(tx, r, f); err != nil {
			return err
		}
		after, err := afterMarker(marker, s.aliasKey(r, f.name, ""))
		if err != nil {
			return err
		}
		kvs, err := tx.List(s.aliasKey(r, f.name, ""), after, 0)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			var a AliasConfiguration
			if err := jsonUnmarshal(kv.Value, &a); err != nil {
				return err
			}
			if v := q.Get("FunctionVersion"); v != "" && a.FunctionVersion != v {
				continue
			}
			if len(out.Aliases) == max {
				out.NextMarker = encodeMarker(out.Aliases[max-1].Name)
				break
			}
			out.Aliases = append(out.Aliases, a)
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return 200, out, nil
}
