package main

import "syscall"

// sysProcAttr puts a child in its own process group and, should the demo
// itself be killed without a chance to clean up, has the kernel kill the
// child too.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
