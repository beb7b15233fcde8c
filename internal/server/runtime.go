package server

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// RuntimeInfo describes a running server; it is written to <data-dir>/server.json once the server
// listens, for `nubis env` to read, and removed when the server stops.
type RuntimeInfo struct {
	PID      int    `json:"pid"`
	Endpoint string `json:"endpoint"`
	Region   string `json:"region"`
}

const runtimeFile = "server.json"

func writeRuntimeInfo(dir string, info RuntimeInfo) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, runtimeFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, runtimeFile))
}

// ReadRuntimeInfo returns what the server running on dataDir wrote about itself, or an error if no
// server runs there (its file is missing or its process is gone).
func ReadRuntimeInfo(dataDir string) (RuntimeInfo, error) {
	var info RuntimeInfo
	b, err := os.ReadFile(filepath.Join(dataDir, runtimeFile))
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, fmt.Errorf("%s: %w", runtimeFile, err)
	}
	if !locked(dataDir) {
		return info, fmt.Errorf("the server that wrote %s (pid %d) is not running", runtimeFile, info.PID)
	}
	return info, nil
}

// endpointURL is the URL clients use to reach a listener: a wildcard address becomes loopback.
func endpointURL(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return "http://" + addr.String()
	}
	ip := tcp.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return "http://" + net.JoinHostPort(ip.String(), fmt.Sprint(tcp.Port))
}
