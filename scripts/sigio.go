package scripts

/*
#include <signal.h>
#include <stdint.h>
#include <string.h>

// magnet_sigio counts the SIGIO signals the process has taken: an inotify
// descriptor in O_ASYNC mode sends one whenever it queues an event.
static uint32_t magnet_sigio;

static void magnet_on_sigio(int sig) {
	(void)sig;
	__atomic_add_fetch(&magnet_sigio, 1, __ATOMIC_SEQ_CST);
}

// Go's rules for handlers installed by C code: SA_ONSTACK, since goroutine
// stacks are small. SA_RESTART keeps most interrupted system calls going.
static int magnet_install_sigio(void) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = magnet_on_sigio;
	sa.sa_flags = SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGIO, &sa, NULL);
}

static uint32_t *magnet_sigio_count(void) { return &magnet_sigio; }
*/
import "C"

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"
)

// The process takes SIGIO in a C handler that only counts. Lookup compares
// the count with the one it saw last, a memory load, to learn whether an
// inotify descriptor has events, instead of asking the kernel on every
// request. Nothing else in magnet-worker uses SIGIO; a Go program that
// calls signal.Notify for SIGIO (or for every signal) takes the handler
// back and stops change detection.
var (
	sigioOnce  sync.Once
	sigioErr   error
	sigioCount *uint32
)

func installSIGIO() error {
	sigioOnce.Do(func() {
		if rc, err := C.magnet_install_sigio(); rc != 0 {
			sigioErr = fmt.Errorf("sigaction SIGIO: %w", err)
			return
		}
		sigioCount = (*uint32)(unsafe.Pointer(C.magnet_sigio_count()))
	})
	return sigioErr
}

// sigios is the number of SIGIO signals taken so far.
func sigios() uint32 { return atomic.LoadUint32(sigioCount) }
