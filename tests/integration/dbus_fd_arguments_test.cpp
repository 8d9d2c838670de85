// fd arguments on the peer-to-peer D-Bus endpoint: accepted where the socket's spec accepts fds
// (AcceptFileDescriptors=yes), refused where it does not, without the fd ever reaching the handler.
#include "dbus_test_service.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <format>
#include <fstream>
#include <string>

namespace svckit::test {
namespace {

class DBusFdArguments : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/svckit-dbus-XXXXXX";
        dir = ::mkdtemp(pattern);
        probeConfig = ProbeConfig{.address = dir + "/dbus.sock"};
        std::ofstream(dir + "/file") << "twelve bytes";
    }
    void TearDown() override { std::filesystem::remove_all(dir); }
    [[nodiscard]] std::string socket() const { return probeConfig.address; }
    [[nodiscard]] UniqueFd file() const {
        return UniqueFd(::open((dir + "/file").c_str(), O_RDONLY | O_CLOEXEC));
    }
    std::string dir;
};

TEST_F(DBusFdArguments, AnFdArgumentReachesTheHandlerWhereTheSocketAcceptsFds) {
    probeConfig.acceptFds = true;
    ProbeChild service(dir);
    ASSERT_TRUE(eventually([&] { return static_cast<bool>(connectRaw(socket())); })) << service.err();
    ProbeClient client(socket());
    UniqueFd fd = file();
    uint64_t size = 0;
    client.proxy->callMethod("SizeOf")
        .onInterface(probeInterface)
        .withArguments(sdbus::UnixFd{fd.get()})
        .storeResultsTo(size);
    EXPECT_EQ(size, 12u) << service.err();
    service.signal(SIGTERM);
    EXPECT_EQ(service.wait(), 0) << service.err();
}

TEST_F(DBusFdArguments, AnFdArgumentIsRefusedWhereTheSocketRefusesFds) {
    probeConfig.acceptFds = false;
    ProbeChild service(dir);
    ASSERT_TRUE(eventually([&] { return static_cast<bool>(connectRaw(socket())); })) << service.err();
    ProbeClient client(socket());
    UniqueFd fd = file();
    // The server refused fd passing in the handshake (NEGOTIATE_UNIX_FD answered ERROR): the client's sd-bus
    // refuses to put an fd in a message for it.
    try {
        uint64_t size = 0;
        client.proxy->callMethod("SizeOf")
            .onInterface(probeInterface)
            .withArguments(sdbus::UnixFd{fd.get()})
            .storeResultsTo(size);
        ADD_FAILURE() << "SizeOf answered " << size;
    } catch (const sdbus::Error& e) {
        EXPECT_NE(std::string(e.what()).find("Operation not supported"), std::string::npos) << e.what();
    }
    // The connection is still served.
    EXPECT_EQ(client.echo("no fds"), "no fds") << service.err();
    service.signal(SIGTERM);
    EXPECT_EQ(service.wait(), 0) << service.err();
}

TEST_F(DBusFdArguments, AnFdSentAnywayOnASocketThatRefusesFdsNeverArrives) {
    probeConfig.acceptFds = false;
    ProbeChild service(dir);
    ASSERT_TRUE(eventually([&] { return static_cast<bool>(connectRaw(socket())); })) << service.err();
    // A client that ignores the handshake's answer and sends SCM_RIGHTS: the kernel refuses it (the socket
    // has SO_PASSRIGHTS off), so nothing reaches sd-bus, let alone the handler.
    UniqueFd raw = connectRaw(socket());
    ASSERT_TRUE(raw);
    UniqueFd fd = file();
    char byte = 0;
    iovec iov{.iov_base = &byte, .iov_len = 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))]{};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    int passed = fd.get();
    std::memcpy(CMSG_DATA(cmsg), &passed, sizeof passed);
    errno = 0;
    EXPECT_LT(::sendmsg(raw.get(), &msg, MSG_NOSIGNAL), 0);
    EXPECT_EQ(errno, EPERM);
    ProbeClient client(socket());
    EXPECT_EQ(client.echo("served"), "served") << service.err();
    service.signal(SIGTERM);
    EXPECT_EQ(service.wait(), 0) << service.err();
}

} // namespace
} // namespace svckit::test
