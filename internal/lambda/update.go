package lambda

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

func jsonBytes(v any) ([]byte, error)     { return json.Marshal(v) }
func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// latestForUpdate loads $LATEST for a change: it must exist, not be mid-update, and match the
// caller's RevisionId precondition if one is given.
func (s *Service) latestForUpdate(tx store.Tx, r *awsproto.Request, f ref, revision string) (function, version, error) {
	fn, err := s.requireFunction(tx, r, f)
	if err != nil {
		return fn, version{}, err
	}
	v, _, err := store.GetJSON[version](tx, s.versionKey(r, f.name, "$LATEST"))
	if err != nil {
		return fn, v, err
	}
	if revision != "" && revision != v.Config.RevisionID {
		return fn, v, preconditionFailed("GetFunction/GetAlias")
	}
	if v.Config.State == StatePending || v.Config.LastUpdateStatus == UpdateRunning {
		return fn, v, conflict("The operation cannot be performed at this time. An update is in progress for resource: %s", s.functionARN(r, f.name))
	}
	return fn, v, nil
}

type updateCodeInput struct {
	ZipFile       []byte
	S3Bucket      string
	S3Key         string
	ImageUri      string
	Publish       bool
	DryRun        bool
	RevisionId    string
	Architectures []string
}

func (s *Service) updateFunctionCode(ctx context.Context, r *awsproto.Request) (int, any, error) {
	f, err := s.parseRef(r, r.HTTP.PathValue("name"), "")
	if err != nil {
		return 0, nil, err
	}
	if f.qualifier != "" {
		return 0, nil, invalidParam("Only the $LATEST version of a function can be updated; remove the qualifier %q.", f.qualifier)
	}
	var in updateCodeInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if in.S3Bucket != "" || in.S3Key != "" || in.ImageUri != "" {
		return 0, nil, invalidParam("nubis has no S3 or image repository yet: give the code as ZipFile.")
	}
	if len(in.ZipFile) == 0 {
		return 0, nil, invalidParam("Please provide a source for function code.")
	}
	if err := validateArchitectures(in.Architectures); err != nil {
		return 0, nil, err
	}
	info, err := checkZip(in.ZipFile)
	if err != nil {
		return 0, nil, err
	}
	if !in.DryRun {
		if err := s.code.put(info, in.ZipFile); err != nil {
			return 0, nil, err
		}
	}
	var out FunctionConfiguration
	var latestRev string
	err = s.store.Update(ctx, func(tx store.Tx) error {
		fn, v, err := s.latestForUpdate(tx, r, f, in.RevisionId)
		if err != nil {
			return err
		}
		if err := checkUnzipped(info.Unzipped, v.LayersUnzipped); err != nil {
			return err
		}
		v.Config.CodeSha256, v.Config.CodeSize, v.CodeHex, v.CodeUnzipped = info.Sha256, info.Size, info.Hex, info.Unzipped
		if in.DryRun {
			out = v.Config
			return nil
		}
		v.Config.LastModified = lastModified(s.now())
		v.Config.RevisionID = newRevision()
		v.Config.LastUpdateStatus, v.Config.LastUpdateReason, v.Config.LastUpdateCode = UpdateRunning, "The function is being created.", "Creating"
		latestRev = v.Config.RevisionID
		if err := store.PutJSON(tx, s.versionKey(r, f.name, "$LATEST"), v); err != nil {
			return err
		}
		out = v.Config
		if in.Publish {
			pv, err := s.publish(tx, r, &fn, v, v.Config.Description)
			if err != nil {
				return err
			}
			out = pv.Config
			return store.PutJSON(tx, s.functionKey(r, f.name), fn)
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	if latestRev != "" {
		s.prepareAsync(s.versionKey(r, f.name, "$LATEST"), latestRev)
	}
	return 200, out, nil
}

type updateConfigInput struct {
	Role             *string
	Handler          *string
	Description      *string
	Timeout          *int
	MemorySize       *int
	Environment      *Environment
	Runtime          *string
	RevisionId       string
	EphemeralStorage *EphemeralStorage
	Layers           []string
	VpcConfig        *struct{ SubnetIds, SecurityGroupIds []string }
	LoggingConfig    *loggingConfigInput
}

func (s *Service) updateFunctionConfiguration(ctx context.Context, r *awsproto.Request) (int, any, error) {
	f, err := s.parseRef(r, r.HTTP.PathValue("name"), "")
	if err != nil {
		return 0, nil, err
	}
	if f.qualifier != "" {
		return 0, nil, invalidParam("Only the $LATEST version of a function can be updated; remove the qualifier %q.", f.qualifier)
	}
	var in updateConfigInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if in.VpcConfig != nil && len(in.VpcConfig.SubnetIds) > 0 {
		return 0, nil, invalidParam("nubis does not support VpcConfig for functions yet.")
	}
	var out FunctionConfiguration
	var prepareRev string
	err = s.store.Update(ctx, func(tx store.Tx) error {
		_, v, err := s.latestForUpdate(tx, r, f, in.RevisionId)
		if err != nil {
			return err
		}
		c := &v.Config
		newLayers := false
		if in.Layers != nil {
			refs, hexes, size, err := s.resolveLayers(tx, r, in.Layers)
			if err != nil {
				return err
			}
			if err := checkUnzipped(s.codeUnzipped(v), size); err != nil {
				return err
			}
			// Prepared again even when unchanged: a retry after a failed update recovers.
			newLayers = len(hexes) > 0 || !slices.Equal(hexes, v.LayerHexes)
			c.Layers, v.LayerHexes, v.LayersUnzipped = refs, hexes, size
		}
		set(&c.Role, in.Role)
		set(&c.Handler, in.Handler)
		set(&c.Description, in.Description)
		set(&c.Timeout, in.Timeout)
		set(&c.MemorySize, in.MemorySize)
		set(&c.Runtime, in.Runtime)
		if in.Environment != nil {
			c.Environment = in.Environment
		}
		if in.EphemeralStorage != nil {
			c.EphemeralStorage = *in.EphemeralStorage
		}
		if err := applyLogging(c, in.LoggingConfig); err != nil {
			return err
		}
		if err := validateConfig(*c, nil); err != nil {
			return err
		}
		c.LastModified = lastModified(s.now())
		c.RevisionID = newRevision()
		c.LastUpdateStatus, c.LastUpdateReason, c.LastUpdateCode = UpdateOK, "", ""
		if newLayers {
			// The new /opt is made before the update is Successful.
			c.LastUpdateStatus, c.LastUpdateReason, c.LastUpdateCode = UpdateRunning, "The function is being created.", "Creating"
			prepareRev = c.RevisionID
		}
		out = *c
		return store.PutJSON(tx, s.versionKey(r, f.name, "$LATEST"), v)
	})
	if err != nil {
		return 0, nil, err
	}
	if prepareRev != "" {
		s.prepareAsync(s.versionKey(r, f.name, "$LATEST"), prepareRev)
	}
	return 200, out, nil
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func (s *Service) deleteFunction(ctx context.Context, r *awsproto.Request) (int, any, error) {
	f, err := s.parseRef(r, r.HTTP.PathValue("name"), r.HTTP.URL.Query().Get("Qualifier"))
	if err != nil {
		return 0, nil, err
	}
	if f.qualifier == "$LATEST" {
		return 0, nil, invalidParam("$LATEST version cannot be deleted without deleting the function.")
	}
	if f.qualifier != "" && !digits.MatchString(f.qualifier) {
		return 0, nil, invalidParam("Deletion of aliases is not supported. Use DeleteAlias to delete the alias %s.", f.qualifier)
	}
	err = s.store.Update(ctx, func(tx store.Tx) error {
		if _, err := s.requireFunction(tx, r, f); err != nil {
			return err
		}
		aliases, err := tx.List(s.aliasKey(r, f.name, ""), "", 0)
		if err != nil {
			return err
		}
		if f.qualifier != "" {
			key := s.versionKey(r, f.name, f.qualifier)
			if _, err := tx.Get(key); err != nil {
				return functionNotFound(s.arn(r, f))
			}
			var users []string
			for _, kv := range aliases {
				var a AliasConfiguration
				if err := json.Unmarshal(kv.Value, &a); err != nil {
					return err
				}
				_, extra := a.RoutingConfig.weights()[f.qualifier]
				if a.FunctionVersion == f.qualifier || extra {
					users = append(users, a.Name)
				}
			}
			if len(users) > 0 {
				return conflict("Unable to delete version because the following aliases reference it: %v", users)
			}
			// The version's policy and asynchronous settings go with it.
			if fn, err := s.requireFunction(tx, r, ref{name: f.name}); err == nil {
				delete(fn.Policies, f.qualifier)
				delete(fn.EventInvoke, f.qualifier)
				if err := store.PutJSON(tx, s.functionKey(r, f.name), fn); err != nil {
					return err
				}
			}
			return tx.Delete(key)
		}
		versions, err := tx.List(s.versionsPrefix(r, f.name), "", 0)
		if err != nil {
			return err
		}
		for _, kv := range append(versions, aliases...) {
			if err := tx.Delete(kv.Key); err != nil {
				return err
			}
		}
		if err := s.deleteURLsTx(tx, r, f.name, ""); err != nil {
			return err
		}
		return tx.Delete(s.functionKey(r, f.name))
	})
	if err != nil {
		return 0, nil, err
	}
	if f.qualifier == "" {
		s.pool.retire(r.Caller.AccountID, f.name)
	}
	return 204, nil, nil
}

func (rc *RoutingConfig) weights() map[string]float64 {
	if rc == nil {
		return nil
	}
	return rc.AdditionalVersionWeights
}
