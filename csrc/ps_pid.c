/* ps_pid.c -- this process's id without a system call per check.
 *
 * Every entry point compares the caller's pid with the env's to refuse use
 * after fork().  getpid() is a real system call (glibc does not cache it),
 * ~0.3 us on a VM: more than an LMDB lookup's share.  The pid is read once
 * and refreshed in the child by a pthread_atfork() handler, which fork()
 * (and so os.fork()) runs before the child returns. */
#include <pthread.h>
#include <unistd.h>

#include "ps_internal.h"

static volatile pid_t cached_pid;
static pthread_once_t pid_once = PTHREAD_ONCE_INIT;

static void refresh_pid(void)
{
    cached_pid = getpid();
}

static void init_pid(void)
{
    cached_pid = getpid();
    if (pthread_atfork(NULL, NULL, refresh_pid) != 0)
        cached_pid = 0; /* no handler: fall back to getpid() every time */
}

pid_t ps_getpid(void)
{
    pthread_once(&pid_once, init_pid);
    pid_t pid = cached_pid;
    return pid ? pid : getpid();
}
