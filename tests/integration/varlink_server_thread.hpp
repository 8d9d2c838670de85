// tests/integration/varlink_server_thread.hpp — a varlink::Server on its own EventLoop in a thread, for tests
// that call it from the test thread over real sockets. The setup function runs on the loop's thread before
// the loop starts (everything the Server touches must run there); stop() ends the loop and joins.
#pragma once

#include <svckit/event_loop.hpp>
#include <svckit/socket_spec.hpp>
#include <svckit/unique_fd.hpp>
#include <svckit/varlink.hpp>

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <format>
#include <functional>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>

namespace svckit::test {

class VarlinkServerThread {
public:
    // setup(loop, server) registers interfaces and sockets; an exception or Error it reports fails the
    // constructor. Returns "" or a failure description.
    using Setup = std::function<std::string(EventLoop& loop, varlink::Server& server)>;

    explicit VarlinkServerThread(Setup setup, varlink::ServerOptions options = {}) {
        stop_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        std::promise<std::string> ready;
        auto started = ready.get_future();
        thread_ = std::thread([this, setup = std::move(setup), options = std::move(options),
                               &ready]() mutable { run(setup, std::move(options), ready); });
        std::string error = started.get();
        if (!error.empty()) {
            thread_.join();
            throw std::runtime_error(error);
        }
    }
    ~VarlinkServerThread() { stop(); }
    VarlinkServerThread(const VarlinkServerThread&) = delete;
    VarlinkServerThread& operator=(const VarlinkServerThread&) = delete;

    // Ends the loop; the Server (and every connection) is gone when this returns.
    void stop() {
        if (thread_.joinable()) {
            uint64_t one = 1;
            (void)!::write(stop_.get(), &one, sizeof(one));
            thread_.join();
        }
    }

    // A listening AF_UNIX stream socket bound to `path` ("@name": abstract), with the spec to serve it with.
    static std::string listenOn(varlink::Server& server, const std::string& path, bool acceptFds = false) {
        UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::memcpy(address.sun_path, path.data(), std::min(path.size(), sizeof(address.sun_path) - 1));
        socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
        if (path[0] == '@') {
            address.sun_path[0] = '\0';
            length -= 1;
        }
        if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), length) < 0 ||
            ::listen(listener.get(), 128) < 0)
            return std::format("bind/listen {}: {}", path, std::strerror(errno));
        SocketSpec spec;
        spec.name = "varlink";
        spec.address = path;
        spec.passPidfd = false;
        spec.acceptFileDescriptors = acceptFds;
        if (auto r = server.listen(std::move(listener), spec); !r)
            return r.error().message();
        return "";
    }

private:
    void run(Setup& setup, varlink::ServerOptions options, std::promise<std::string>& ready) {
        auto loop = EventLoop::create();
        if (!loop)
            return ready.set_value(loop.error().message());
        auto server = varlink::Server::create(*loop, std::move(options));
        if (!server)
            return ready.set_value(server.error().message());
        std::string error;
        try {
            error = setup(*loop, *server);
        } catch (const std::exception& e) {
            error = e.what();
        }
        if (!error.empty())
            return ready.set_value(error);
        auto stopSource = loop->addIo(stop_.get(), EPOLLIN, [&](uint32_t) { loop->exit(0); });
        if (!stopSource)
            return ready.set_value(stopSource.error().message());
        ready.set_value("");
        (void)loop->run();
    }

    UniqueFd stop_;
    std::thread thread_;
};

} // namespace svckit::test
