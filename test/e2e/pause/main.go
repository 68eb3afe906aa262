// Command pause is the e2e cluster's sandbox ("pause") image: it holds a
// pod's namespaces open and does nothing until it is told to stop. Built
// here so the cluster never pulls an image from a registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
