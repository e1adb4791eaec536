// A stand-in for the k3s binary on the test bed's workers, where k3s cannot run (it cannot be
// built here, see the README): `k3s agent ...` tells systemd it is ready (the unit is
// Type=notify) and listens on the kubelet port on loopback, which is all the k3s_agent role
// waits for. The Nodes of the bed are kwok's, on the real API server on the master. `version`
// is set at build time (-ldflags -X) so that two builds are two different binaries: an upgrade.
package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
)

var version = "dev"

func main() {
	if len(os.Args) < 2 || os.Args[1] != "agent" {
		fmt.Printf("k3s version %s (micado test bed stand-in)\n", version)
		return
	}
	listener, err := net.Listen("tcp", "127.0.0.1:10250")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer listener.Close()
	if socket := os.Getenv("NOTIFY_SOCKET"); socket != "" {
		conn, err := net.Dial("unixgram", socket)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		_, _ = conn.Write([]byte("READY=1"))
		conn.Close()
	}
	go func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
