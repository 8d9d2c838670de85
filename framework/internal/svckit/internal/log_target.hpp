// svckit/internal/log_target.hpp — where stderr goes, which decides the shape of svckit's log lines and
// whether a start-up refusal is sent to the journal with structured fields. Never installed.
//
// systemd sets $JOURNAL_STREAM to "DEVICE:INODE" of the stream it connected to the service's stdout/stderr
// (sd-daemon(3), systemd.exec(5)); a process knows its stderr is that stream when fstat() of fd 2 gives the
// same pair. Children inherit the variable with a different stderr, so it is never trusted alone.
#pragma once

namespace svckit::internal {

enum class LogTarget {
    Journal,  // the journal's stream, as $JOURNAL_STREAM names it: "<N>" prefixes
    Terminal, // a tty: plain lines, for a person
    Other,    // a pipe, a file, a socket that is not the journal: "<N>" prefixes, kept for whoever reads them
};

// The target of `fd`, given $JOURNAL_STREAM's value (nullptr when unset).
[[nodiscard]] LogTarget logTarget(int fd, const char* journalStream) noexcept;
// The target of stderr now, with the environment's $JOURNAL_STREAM.
[[nodiscard]] LogTarget stderrLogTarget() noexcept;

} // namespace svckit::internal
