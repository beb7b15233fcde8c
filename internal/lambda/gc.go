package lambda

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	"github.com/nubis/nubis/internal/store"
)

// collectGarbage removes, at start (when no request is writing code), the code blobs, unpacked
// code (task dirs) and merged layers (/opt dirs) that no function version or layer version uses
// any more: left by code updates, deleted functions and layers, or a crash between writing a
// blob and storing the version that names it. kvs are all of Lambda's store entries.
func (s *Service) collectGarbage(kvs []store.KV) {
	blobs, tasks, opts := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, kv := range kvs {
		switch {
		case strings.Contains(kv.Key, "/version/"):
			var v version
			if json.Unmarshal(kv.Value, &v) != nil {
				return // an entry we cannot read: keep everything rather than guess
			}
			blobs[v.CodeHex], tasks[v.CodeHex] = true, true
			for _, h := range v.LayerHexes {
				blobs[h] = true
			}
			if len(v.LayerHexes) > 0 {
				opts[filepath.Base(s.optDir(v.LayerHexes))] = true
			}
		case strings.Contains(kv.Key, "/layerversion/"):
			var lv layerVersion
			if json.Unmarshal(kv.Value, &lv) != nil {
				return
			}
			blobs[lv.CodeHex] = true
		}
	}
	var freed int64
	sweep := func(dir string, keep func(name string) bool) {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if keep(e.Name()) {
				continue
			}
			p := filepath.Join(dir, e.Name())
			freed += du(p)
			if err := os.RemoveAll(p); err != nil {
				s.log.Warn("removing unused function code", "path", p, "err", err)
			}
		}
	}
	sweep(s.code.dir, func(name string) bool { return blobs[strings.TrimSuffix(name, ".zip")] })
	sweep(filepath.Join(s.cfg.DataDir, "lambda", "task"), func(name string) bool { return tasks[name] })
	sweep(filepath.Join(s.cfg.DataDir, "lambda", "opt"), func(name string) bool { return opts[name] })
	if freed > 0 {
		s.log.Info("removed function code no version uses", "bytes", freed)
	}
}

// du is the size of the files below path.
func du(path string) int64 {
	var n int64
	filepath.WalkDir(path, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
