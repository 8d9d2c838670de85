// closeAsync(): received fds are closed on a background thread, never on the loop's.
//
// close() of a descriptor another process handed over can block for as long as that process likes: the last
// close of a TCP socket with SO_LINGER and a full send queue waits up to the linger time, a file on FUSE
// sends a FLUSH its server may never answer, NFS writes back. systemd's asynchronous_close() clones a thread
// per close; svckit keeps one worker thread and a queue, which is simpler and bounded:
//
// - The queue holds descriptors this process has open, so it can never be longer than RLIMIT_NOFILE: it grows
//   instead of refusing (refusing would mean closing on the caller's thread, the very thing to avoid). Its
//   storage is swapped with the worker's batch, so after the first closes it no longer allocates.
// - The worker never holds the lock while it closes, so a caller waits at most for a vector swap.
// - A close that blocks delays the closes queued behind it, and those descriptors stay open meanwhile; the
//   callers' limits (maxFdsPerCall, connection limits) bound what each caller can queue at once. A service
//   that must not hold such descriptors at all refuses them: AcceptFileDescriptors=no (docs/security.md).
// - Fork: the worker is started lazily on the first close, and a forked child (a worker process of the
//   supervisor) starts its own the same way; the lock is taken around fork() so the child's copy is usable.
// - Exit: nothing waits for the worker. The state is never destroyed (the worker may be inside close() while
//   the process exits, and exit must not wait for a lingering close: the kernel itself does not linger in an
//   exiting process); what is still queued is closed by the exit.
// - Memory or thread creation failing: the descriptors are closed on the caller's thread rather than leaked.
#include <svckit/unique_fd.hpp>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <span>
#include <system_error>
#include <thread>
#include <vector>

namespace svckit {
namespace {

struct Closer {
    std::mutex mutex;
    std::condition_variable wake;
    std::vector<int> queue; // open descriptors of this process to close
    bool running = false;   // this process has a worker (false again in a forked child)
    bool forkHandlers = false;
};

Closer& closer() {
    // Never destroyed (see the top); reachable, so no leak to LeakSanitizer.
    static Closer* const instance = new Closer;
    return *instance;
}

void work(Closer& c) {
    std::vector<int> batch;
    for (;;) {
        {
            std::unique_lock lock(c.mutex);
            c.wake.wait(lock, [&] { return !c.queue.empty(); });
            batch.swap(c.queue);
        }
        for (int fd : batch)
            ::close(fd);
        batch.clear();
    }
}

// With c.mutex held.
void startWorker(Closer& c) {
    if (!c.forkHandlers) {
        if (::pthread_atfork([] { closer().mutex.lock(); }, [] { closer().mutex.unlock(); },
                             [] {
                                 Closer& child = closer();
                                 child.running = false; // the worker thread did not come along
                                 child.mutex.unlock();
                             }) != 0)
            throw std::system_error(ENOMEM, std::generic_category());
        c.forkHandlers = true;
    }
    // No signal is ever delivered to the worker: the loop takes its signals with signalfd.
    sigset_t all;
    sigset_t previous;
    ::sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &previous);
    try {
        std::thread(work, std::ref(c)).detach();
    } catch (...) {
        ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
        throw;
    }
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    c.running = true;
}

} // namespace

void closeAsync(std::span<UniqueFd> fds) noexcept {
    size_t count = 0;
    for (const UniqueFd& fd : fds)
        count += fd.isValid() ? 1 : 0;
    if (count == 0)
        return;
    Closer& c = closer();
    {
        std::unique_lock lock(c.mutex);
        try {
            if (size_t needed = c.queue.size() + count; needed > c.queue.capacity())
                c.queue.reserve(std::max(needed, 2 * c.queue.capacity()));
            if (!c.running)
                startWorker(c);
        } catch (...) {
            lock.unlock();
            for (UniqueFd& fd : fds)
                fd.reset(); // on this thread after all: better late than leaked
            return;
        }
        for (UniqueFd& fd : fds)
            if (fd)
                c.queue.push_back(fd.release()); // within the reserved capacity: no allocation, no throw
    }
    c.wake.notify_one();
}

void closeAsync(UniqueFd fd) noexcept {
    closeAsync(std::span<UniqueFd>(&fd, 1));
}

} // namespace svckit
