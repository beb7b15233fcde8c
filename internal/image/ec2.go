package image

// EC2UserUID and EC2UserGID are the ids of ec2-user, the login user of nubis's EC2 images (as on
// Amazon Linux, the first regular user).
const (
	EC2UserUID = 1000
	EC2UserGID = 1000
)

// ec2Packages are what the default EC2 image adds to Debian's minimal base: an SSH server, sudo,
// Python and curl, and the small tools people expect on a server.
var ec2Packages = []string{
	"openssh-server", "sudo", "python3", "curl", "ca-certificates", "iproute2", "iputils-ping",
	"procps", "less", "vim-tiny", "netbase", "gzip", "xz-utils", "bash-completion",
}

// ec2Files configure sshd and sudo as AWS's images do: keys only, and ec2-user may sudo without a
// password. sshd does not use PAM: a container cannot set the audit login uid that Debian's PAM
// stack for sshd requires (pam_loginuid), and key-only logins need nothing else from PAM.
var ec2Files = []File{
	{Path: "/etc/ssh/sshd_config.d/50-nubis.conf", Content: "# Written by nubis: key-only logins, as on EC2.\n" +
		"UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n"},
	{Path: "/etc/sudoers.d/90-cloud-init-users", Mode: 0o440,
		Content: "# Created by nubis (as cloud-init does on EC2)\n# User rules for ec2-user\nec2-user ALL=(ALL) NOPASSWD:ALL\n"},
}

var ec2Users = []User{{Name: "ec2-user", UID: EC2UserUID, GID: EC2UserGID, Home: "/home/ec2-user",
	Shell: "/bin/bash", CreateHome: true, Groups: []string{"adm", "sudo"}}}

// EC2Default is the root of the default EC2 image: Debian 12 with python3, curl and sshd, and the
// login user ec2-user with passwordless sudo.
var EC2Default = Recipe{
	Name:     "ec2-debian-12",
	Suite:    "bookworm",
	Variant:  "minbase",
	Packages: ec2Packages,
	Users:    ec2Users,
	Files:    ec2Files,
}

// EC2DataScience is EC2Default plus Debian's numpy, pandas and scikit-learn, so that data work runs
// offline.
var EC2DataScience = Recipe{
	Name:     "ec2-debian-12-datascience",
	Suite:    "bookworm",
	Variant:  "minbase",
	Packages: append(append([]string{}, ec2Packages...), "python3-numpy", "python3-pandas", "python3-sklearn"),
	Users:    ec2Users,
	Files:    ec2Files,
}
