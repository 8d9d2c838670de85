// tests/integration/server_process.hpp — a varlink server binary (the bench example, sd-varlink's reference
// server) run in a child process on the socket path given as its only argument, so that a test can stop it
// (SIGSTOP: it answers nothing) or kill it (it vanishes mid-call). The constructor returns once the socket
// accepts connections; the destructor ends the process.
#pragma once

#include <svckit/varlink_client.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <format>
#include <stdexcept>
#include <string>
#include <thread>

namespace svckit::test {

class ServerProcess {
public:
    ServerProcess(const std::string& binary, const std::string& path) {
        pid_ = ::fork();
        if (pid_ < 0)
            throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            ::execl(binary.c_str(), binary.c_str(), path.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (std::chrono::steady_clock::now() < deadline) {
            if (varlink::Client::connect(path))
                return;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        stop();
        throw std::runtime_error(std::format("{} did not listen on {}", binary, path));
    }
    ~ServerProcess() { stop(); }
    ServerProcess(const ServerProcess&) = delete;
    ServerProcess& operator=(const ServerProcess&) = delete;

    // SIGSTOP: the server reads and answers nothing until resume().
    void pause() { ::kill(pid_, SIGSTOP); }
    void resume() { ::kill(pid_, SIGCONT); }
    // SIGKILL, and reaped: its sockets are closed by the kernel.
    void killNow() {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }

private:
    void stop() {
        if (pid_ <= 0)
            return;
        ::kill(pid_, SIGCONT);
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }

    pid_t pid_ = -1;
};

} // namespace svckit::test
