package guestinit

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// defaultFinalMessage is cloud-init's.
const defaultFinalMessage = "Cloud-init v. {{version}} finished at {{timestamp}}. Datasource {{datasource}}.  Up {{uptime}} seconds"

// finalStage is cloud-init's modules:final, which on EC2 runs after sshd is up: on the
// instance's first boot the user data script or runcmd, deferred write_files and packages
// (which cannot be installed offline: said in the log); on every boot final_message and
// boot-finished; then power_state, if asked.
func (b *boot) finalStage(ctx context.Context) error {
	b.report("Cloud-init v. %s running 'modules:final' at %s. Up %s seconds.", ciVersion, rfc2822(time.Now()), b.upSeconds())
	inst := b.instanceDir()
	var cc *cloudConfig
	if b.ud != nil {
		cc = b.ud.config
	}
	if b.perInstance && b.ud != nil && inst != "" {
		switch b.ud.kind {
		case udScript:
			b.runScript(ctx, "scripts-user", inst+"/scripts/part-001", b.ud.data, nil)
		case udCloudConfig:
			b.writeFiles(cc.WriteFiles, true)
			if len(cc.Packages) > 0 {
				b.report("packages: package installation is not available offline; not installing: %s", strings.Join(cc.Packages, " "))
			}
			if cc.PackageUpdate || cc.PackageUpgrade {
				b.report("package_update/package_upgrade: not available offline; skipping")
			}
			if len(cc.RunCmd) > 0 {
				b.runScript(ctx, "scripts-user", inst+"/scripts/runcmd", shellScript(cc.RunCmd), nil)
			}
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	msg := defaultFinalMessage
	if cc != nil && strings.TrimSpace(cc.FinalMessage) != "" {
		msg = cc.FinalMessage
	}
	now, up := rfc2822(time.Now()), b.upSeconds()
	for _, line := range strings.Split(strings.TrimRight(renderFinalMessage(msg, now, up), "\n"), "\n") {
		b.report("%s", line)
	}
	if inst != "" {
		content := fmt.Sprintf("%s - %s - v. %s\n", up, now, ciVersion)
		if err := os.WriteFile(b.path(inst+"/boot-finished"), []byte(content), 0o644); err != nil {
			b.logf("boot-finished: %v", err)
		}
	}
	if b.perInstance && cc != nil && cc.PowerState != nil {
		b.powerState(ctx, cc.PowerState)
	}
	return nil
}

// renderFinalMessage fills final_message's variables, written {{ name }}, $name or ${name}
// (in lower or upper case), as cloud-init's templates do.
func renderFinalMessage(msg, timestamp, uptime string) string {
	if first, rest, ok := strings.Cut(msg, "\n"); ok && strings.HasPrefix(strings.TrimSpace(first), "## template:") {
		msg = rest
	}
	vars := map[string]string{"version": ciVersion, "timestamp": timestamp, "datasource": datasource, "uptime": uptime}
	var pairs []string
	for k, v := range vars {
		for _, name := range []string{k, strings.ToUpper(k)} {
			pairs = append(pairs, "{{"+name+"}}", v, "{{ "+name+" }}", v, "${"+name+"}", v, "$"+name, v)
		}
	}
	return strings.NewReplacer(pairs...).Replace(msg)
}

// runScript writes script to path (inside the instance, mode 0700) and runs it as root with
// cwd /, its output going to the console and cloud-init-output.log. A failure is logged, with
// cloud-init's words, and the boot goes on.
func (b *boot) runScript(ctx context.Context, module, path string, script []byte, env []string) {
	if err := os.WriteFile(b.path(path), script, 0o700); err != nil {
		b.report("Failed to write %s: %v", path, err)
		return
	}
	os.Chmod(b.path(path), 0o700)
	shown := strings.Replace(path, b.instanceDir(), instanceLink, 1)
	log, err := b.openOutputLog()
	if err != nil {
		b.logf("%v", err)
	} else {
		defer log.Close()
	}
	sink := b.outputLines(nil)
	if log != nil {
		sink = b.outputLines(log)
	}
	ws, err := b.runProc(ctx, proc{path: path, args: []string{path}, dir: "/", env: env, line: sink})
	switch {
	case ctx.Err() != nil:
		return
	case err != nil:
		b.report("Failed running %s: %v", shown, err)
	case ws != 0:
		b.report("Failed running %s [%d]", shown, exitCode(ws))
	default:
		return
	}
	if module == "scripts-user" {
		b.report("Failed to run module scripts-user (scripts in %s/scripts)", instanceLink)
	} else {
		b.report("Failed to run module %s", module)
	}
}

// powerState carries out power_state once user data is done: it checks the condition (true,
// false, or a command that must exit 0), prints the message and asks PID 1 to act.
func (b *boot) powerState(ctx context.Context, ps *powerState) {
	a, err := ps.action()
	if err != nil {
		b.report("%v", err)
		return
	}
	if d := ps.Delay.value(); d != "" && d != "now" {
		b.report("power_state: delay %s is not supported; acting now", d)
	}
	if c := ps.Condition.node; c != nil {
		switch {
		case c.Kind == yaml.ScalarNode && c.Tag == "!!bool":
			if c.Value != "true" {
				b.report("power_state: condition is false; not doing %s", a)
				return
			}
		default:
			var cmd command
			if err := c.Decode(&cmd); err != nil {
				b.report("power_state: condition: %v", err)
				return
			}
			ws, err := b.runProc(ctx, proc{path: "/bin/sh", args: []string{"sh", "-c", cmd.shellLine()}, dir: "/", line: b.consoleLines})
			if err != nil || ws != 0 {
				b.report("power_state: condition %q not met; not doing %s", cmd.shellLine(), a)
				return
			}
		}
	}
	if ps.Message != "" {
		b.report("%s", ps.Message)
	}
	if b.power == nil {
		return
	}
	select {
	case b.power <- a:
	default:
	}
}
