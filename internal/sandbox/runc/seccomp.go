package runc

import (
	"runtime"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The seccomp profile of every sandbox: Docker's and containerd's default profile (moby's
// profiles/seccomp) as it applies to a process with no capabilities at all. Every rule of that
// profile that is conditional on a capability (mount, unshare, setns, bpf, ptrace of others, module
// loading, clock setting...) is left out because sandboxes have none; what remains is its allow-list,
// its argument filters (personality, clone without namespace flags, socket address families) and
// its per-architecture additions, for the native architecture only (see seccompArches). Anything
// else fails with EPERM; clone3 fails with ENOSYS so that the C library falls back to clone, whose
// flags can be filtered.
//
// Names that the host's libseccomp does not know (syscalls newer than it) are skipped by runc.

// allowedSyscalls is the default profile's unconditional allow-list.
var allowedSyscalls = []string{
	"accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat", "capget", "capset",
	"chdir", "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres",
	"clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
	"clock_nanosleep_time64", "close", "close_range", "connect", "copy_file_range", "creat", "dup",
	"dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
	"epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat", "exit",
	"exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark",
	"fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64",
	"fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat",
	"fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex",
	"futex_requeue", "futex_time64", "futex_wait", "futex_waitv", "futex_wake", "futimesat", "getcpu",
	"getcwd", "getdents", "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid",
	"getgid32", "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid",
	"getppid", "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32",
	"getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname", "getsockopt",
	"get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr", "getxattrat",
	"inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl",
	"io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set",
	"io_setup", "io_submit", "ipc", "kill", "landlock_add_rule", "landlock_create_ruleset",
	"landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen",
	"listmount", "listxattr", "listxattrat", "llistxattr", "_llseek", "lremovexattr", "lseek",
	"lsetxattr", "lstat", "lstat64", "madvise", "map_shadow_stack", "membarrier", "memfd_create",
	"memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall",
	"mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
	"mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "mremap", "mseal",
	"msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap",
	"name_to_handle_at", "nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2", "pause",
	"pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect",
	"poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64",
	"process_mrelease", "pselect6", "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read",
	"readahead", "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64",
	"recvmsg", "remap_file_pages", "removexattr", "removexattrat", "rename", "renameat", "renameat2",
	"restart_syscall", "riscv_hwprobe", "rmdir", "rseq", "rt_sigaction", "rt_sigpending",
	"rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
	"rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr",
	"sched_getparam", "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
	"sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr",
	"sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget",
	"semop", "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg", "sendmsg",
	"sendto", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups",
	"setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32", "setresgid",
	"setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list",
	"setsid", "setsockopt", "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr",
	"setxattrat", "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd",
	"signalfd4", "sigprocmask", "sigreturn", "socketcall", "socketpair", "splice", "stat", "stat64",
	"statfs", "statfs64", "statmount", "statx", "symlink", "symlinkat", "sync", "sync_file_range",
	"syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun",
	"timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create",
	"timerfd_gettime", "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times", "tkill",
	"truncate", "truncate64", "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "uretprobe", "utime",
	"utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid",
	"write", "writev",
	// Allowed by the default profile on kernels from 4.8, where they check ptrace access
	// properly; within a sandbox they reach only its own processes.
	"process_vm_readv", "process_vm_writev", "ptrace",
}

// archSyscalls are the default profile's additions per Go architecture.
var archSyscalls = map[string][]string{
	"amd64":   {"arch_prctl", "modify_ldt"},
	"386":     {"modify_ldt"},
	"arm64":   {"arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"},
	"arm":     {"arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"},
	"ppc64le": {"sync_file_range2", "swapcontext"},
	"s390x":   {"s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"},
	"riscv64": {"riscv_flush_icache"},
}

// seccompArches is the host's native seccomp architecture. The default profile also lists the
// compatibility ABIs (x86 and x32 on amd64, arm on arm64); leaving them out means that 32-bit
// programs cannot run in a sandbox (their system calls hit libseccomp's bad-architecture action,
// which kills them), and it makes the filter six times cheaper to build: with runc 1.1.5 and
// libseccomp 2.5.4, `runc create` took 210 ms with the three x86 ABIs and 34 ms with one.
var seccompArches = map[string][]specs.Arch{
	"amd64":   {specs.ArchX86_64},
	"386":     {specs.ArchX86},
	"arm64":   {specs.ArchAARCH64},
	"arm":     {specs.ArchARM},
	"ppc64le": {specs.ArchPPC64LE},
	"s390x":   {specs.ArchS390X},
	"riscv64": {specs.ArchRISCV64},
}

// socketDomains are the address families socket(2) may create: the default profile's list,
// which leaves out AF_VSOCK (host/guest sockets), AF_ALG (the kernel's crypto API) and families
// the kernel no longer implements.
var socketDomains = []uint64{
	unix.AF_NETBEUI, unix.AF_SECURITY, unix.AF_KEY, unix.AF_NETLINK, unix.AF_PACKET, unix.AF_ASH,
	unix.AF_RDS, unix.AF_SNA, unix.AF_PPPOX, unix.AF_LLC, unix.AF_IB, unix.AF_MPLS, unix.AF_CAN,
	unix.AF_TIPC, unix.AF_BLUETOOTH, unix.AF_IUCV, unix.AF_RXRPC, unix.AF_PHONET, unix.AF_IEEE802154,
	unix.AF_NFC, unix.AF_KCM, unix.AF_QIPCRTR, unix.AF_SMC, unix.AF_XDP, unix.AF_MCTP,
}

// socketDomainsBelow: every family from AF_UNIX (1) up to AF_ROSE (11) is allowed too, written as
// one "less than" rule (runc ORs several comparisons of one argument, so a two-sided range
// cannot be expressed; AF_UNSPEC, 0, creates nothing).
const socketDomainsBelow = unix.AF_ROSE + 1

// namespaceFlags are the clone flags that create namespaces: clone with any of them is refused.
const namespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER |
	unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP

// defaultSeccomp returns the profile for the host's architecture. A system sandbox has
// systemCaps, and gets what the default profile allows with them: chroot (CAP_SYS_CHROOT).
func defaultSeccomp(system bool) *specs.LinuxSeccomp {
	eperm, enosys := uint(unix.EPERM), uint(unix.ENOSYS)
	allow := func(names ...string) specs.LinuxSyscall {
		return specs.LinuxSyscall{Names: names, Action: specs.ActAllow}
	}
	argRule := func(name string, arg specs.LinuxSeccompArg) specs.LinuxSyscall {
		return specs.LinuxSyscall{Names: []string{name}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{arg}}
	}

	names := append(append([]string{}, allowedSyscalls...), archSyscalls[runtime.GOARCH]...)
	if system {
		names = append(names, "chroot")
	}
	rules := []specs.LinuxSyscall{allow(names...)}
	// personality: only the values glibc and common tools use (Linux, with or without
	// UNAME26 / ADDR_NO_RANDOMIZE... as the default profile) and the query 0xffffffff.
	for _, v := range []uint64{0x0, 0x0008, 0x20000, 0x20008, 0xffffffff} {
		rules = append(rules, argRule("personality", specs.LinuxSeccompArg{Index: 0, Value: v, Op: specs.OpEqualTo}))
	}
	// socket: the allowed address families.
	rules = append(rules, argRule("socket", specs.LinuxSeccompArg{Index: 0, Value: socketDomainsBelow, Op: specs.OpLessThan}))
	for _, d := range socketDomains {
		rules = append(rules, argRule("socket", specs.LinuxSeccompArg{Index: 0, Value: d, Op: specs.OpEqualTo}))
	}
	// clone: threads and processes, but no new namespaces (the flags are argument 1 on s390).
	cloneArg := uint(0)
	if runtime.GOARCH == "s390x" {
		cloneArg = 1
	}
	rules = append(rules, argRule("clone", specs.LinuxSeccompArg{Index: cloneArg, Value: namespaceFlags, ValueTwo: 0, Op: specs.OpMaskedEqual}))
	// clone3 takes its flags through a pointer seccomp cannot read: ENOSYS makes glibc use clone.
	rules = append(rules, specs.LinuxSyscall{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &enosys})

	return &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: &eperm,
		Architectures:   seccompArches[runtime.GOARCH],
		Syscalls:        rules,
	}
}
