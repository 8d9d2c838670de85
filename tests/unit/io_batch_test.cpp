// IoBatch: many fds behind one loop source. One wake-up is one pass: one epoll_wait serves every ready fd,
// handlers marked dirty are serviced once at the end of it, a handler removed during it is not called again,
// retired objects live until its end. Real fds (socketpairs) on a real EventLoop.
#include <svckit/internal/io_batch.hpp>

#include <svckit/event_loop.hpp>
#include <svckit/unique_fd.hpp>

#include <gtest/gtest.h>

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;

struct Pair {
    svckit::UniqueFd ours;
    svckit::UniqueFd theirs;
};

Pair makePair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds), 0);
    return Pair{svckit::UniqueFd(fds[0]), svckit::UniqueFd(fds[1])};
}

// Records what the batch calls, and in which pass; runs the test's hooks.
class Recorder final : public svckit::IoBatch::Handler, public std::enable_shared_from_this<Recorder> {
public:
    Recorder(std::string name, std::vector<std::string>& log, const int& pass)
        : name_(std::move(name)), log_(log), pass_(pass) {}
    void onIo(uint32_t events) override {
        ++ios;
        revents = events;
        ioPass = pass_;
        log_.push_back(name_ + ".onIo");
        char buffer[16];
        while (::read(fd(), buffer, sizeof buffer) > 0) {
        }
        if (whenIo)
            whenIo();
    }
    void service() override {
        ++services;
        log_.push_back(name_ + ".service");
        if (whenService)
            whenService();
    }

    int ios = 0;
    uint32_t revents = 0;
    int ioPass = -1;
    int services = 0;
    std::function<void()> whenIo;
    std::function<void()> whenService;

private:
    std::string name_;
    std::vector<std::string>& log_;
    const int& pass_;
};

class IoBatchTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto created = svckit::EventLoop::create();
        ASSERT_TRUE(created.has_value()) << created.error().message();
        loop_.emplace(std::move(*created));
        auto batch = svckit::IoBatch::create(*loop_, [this] {
            ++pass_;
            if (afterPass)
                afterPass();
        });
        ASSERT_TRUE(batch.has_value()) << batch.error().message();
        batch_ = std::move(*batch);
        // A test that never finishes its pass fails instead of hanging.
        auto timeout = loop_->addTimer(5s, [this] { loop_->exit(99); });
        ASSERT_TRUE(timeout.has_value());
        timeout_ = std::move(*timeout);
    }
    void TearDown() override {
        handlers_.clear();
        batch_.reset();
    }

    std::shared_ptr<Recorder> watch(const std::string& name, Pair& pair) {
        auto handler = std::make_shared<Recorder>(name, log_, pass_);
        EXPECT_TRUE(batch_->add(*handler, pair.ours.get(), EPOLLIN).has_value());
        handlers_.push_back(handler);
        return handler;
    }
    int run() {
        auto code = loop_->run();
        EXPECT_TRUE(code.has_value());
        return code.value_or(-1);
    }

    std::optional<svckit::EventLoop> loop_;
    std::unique_ptr<svckit::IoBatch> batch_;
    svckit::EventSource timeout_;
    std::vector<std::shared_ptr<Recorder>> handlers_;
    std::vector<std::string> log_;
    int pass_ = 0;
    std::function<void()> afterPass;
};

TEST_F(IoBatchTest, ServesEveryReadyFdInOnePass) {
    std::vector<Pair> pairs;
    std::vector<std::shared_ptr<Recorder>> handlers;
    for (int i = 0; i < 8; ++i)
        pairs.push_back(makePair());
    for (int i = 0; i < 8; ++i) {
        handlers.push_back(watch("h" + std::to_string(i), pairs[i]));
        ASSERT_EQ(::write(pairs[i].theirs.get(), "x", 1), 1);
    }
    afterPass = [this] { loop_->exit(0); };
    EXPECT_EQ(run(), 0);
    EXPECT_EQ(pass_, 1);
    for (auto& handler : handlers) {
        EXPECT_EQ(handler->ios, 1);
        EXPECT_EQ(handler->ioPass, 0); // all in the first pass
    }
}

TEST_F(IoBatchTest, ServicesAHandlerMarkedSeveralTimesOnceAtTheEndOfThePass) {
    auto a = makePair();
    auto b = makePair();
    auto reader = watch("reader", a);
    auto other = watch("other", b); // never ready
    reader->whenIo = [&] {
        batch_->markDirty(*other);
        batch_->markDirty(*other);
        batch_->markDirty(*other);
        EXPECT_EQ(other->services, 0); // not yet: at the end of the pass
    };
    afterPass = [this] { loop_->exit(0); };
    ASSERT_EQ(::write(a.theirs.get(), "x", 1), 1);
    EXPECT_EQ(run(), 0);
    EXPECT_EQ(other->services, 1);
    EXPECT_EQ(other->ios, 0);
    EXPECT_FALSE(other->dirty());
}

TEST_F(IoBatchTest, ServicesAHandlerMarkedInItsOwnOnIoRightAfterIt) {
    auto a = makePair();
    auto b = makePair();
    auto first = watch("a", a);
    auto second = watch("b", b);
    first->whenIo = [&] { batch_->markDirty(*first); };
    second->whenIo = [&] { batch_->markDirty(*second); };
    afterPass = [this] { loop_->exit(0); };
    ASSERT_EQ(::write(a.theirs.get(), "x", 1), 1);
    ASSERT_EQ(::write(b.theirs.get(), "x", 1), 1);
    EXPECT_EQ(run(), 0);
    ASSERT_EQ(log_.size(), 4u);
    // Each service() follows its own onIo(), whatever order epoll reported them in.
    EXPECT_EQ(log_[0].substr(0, 1), log_[1].substr(0, 1));
    EXPECT_EQ(log_[1].substr(1), ".service");
    EXPECT_EQ(log_[2].substr(0, 1), log_[3].substr(0, 1));
    EXPECT_EQ(first->services, 1);
    EXPECT_EQ(second->services, 1);
}

TEST_F(IoBatchTest, DoesNotServiceAQueuedHandlerAgainOnceItsOwnOnIoServicedIt) {
    auto a = makePair();
    auto b = makePair();
    auto first = watch("a", a);
    auto second = watch("b", b);
    // Each marks the other (queued) and itself (serviced right after its onIo). The one served first is
    // marked again by the second, so it is serviced at the end of the pass too; the second, queued by the
    // first, was serviced after its own onIo already and is not serviced again.
    first->whenIo = [&] {
        batch_->markDirty(*second);
        batch_->markDirty(*first);
    };
    second->whenIo = [&] {
        batch_->markDirty(*first);
        batch_->markDirty(*second);
    };
    afterPass = [this] { loop_->exit(0); };
    ASSERT_EQ(::write(a.theirs.get(), "x", 1), 1);
    ASSERT_EQ(::write(b.theirs.get(), "x", 1), 1);
    EXPECT_EQ(run(), 0);
    EXPECT_EQ(first->ios, 1);
    EXPECT_EQ(second->ios, 1);
    EXPECT_EQ(first->services + second->services, 3);
}

TEST_F(IoBatchTest, DoesNotCallAHandlerRemovedEarlierInThePass) {
    auto a = makePair();
    auto b = makePair();
    auto first = watch("a", a);
    auto second = watch("b", b);
    // Both are ready; whichever is served first removes the other.
    first->whenIo = [&] { batch_->remove(*second); };
    second->whenIo = [&] { batch_->remove(*first); };
    afterPass = [this] { loop_->exit(0); };
    ASSERT_EQ(::write(a.theirs.get(), "x", 1), 1);
    ASSERT_EQ(::write(b.theirs.get(), "x", 1), 1);
    EXPECT_EQ(run(), 0);
    EXPECT_EQ(first->ios + second->ios, 1);
}

TEST_F(IoBatchTest, RunsWorkMarkedOutsideAPassInAPassOfItsOwn) {
    auto a = makePair();
    auto idle = watch("idle", a);
    batch_->markDirty(*idle); // from no callback of the batch: the defer source runs it
    afterPass = [this] { loop_->exit(0); };
    EXPECT_EQ(run(), 0);
    EXPECT_EQ(idle->services, 1);
    EXPECT_EQ(idle->ios, 0);
    EXPECT_EQ(pass_, 1);
}

TEST_F(IoBatchTest, KeepsARetiredHandlerAliveUntilTheEndOfThePass) {
    auto a = makePair();
    auto handler = watch("a", a);
    std::weak_ptr<Recorder> weak = handler;
    bool aliveAfterRetiring = false;
    handler->whenIo = [&] {
        batch_->remove(*handler);
        batch_->retire(handler);
        handlers_.clear();
        handler.reset(); // the last owner but the graveyard
        aliveAfterRetiring = !weak.expired();
    };
    afterPass = [this] { loop_->exit(0); };
    ASSERT_EQ(::write(a.theirs.get(), "x", 1), 1);
    EXPECT_EQ(run(), 0);
    EXPECT_TRUE(aliveAfterRetiring);
    EXPECT_TRUE(weak.expired());
}

TEST_F(IoBatchTest, ReportsTheHangUpOfAnFdWhoseEventsAreCleared) {
    auto a = makePair();
    auto handler = watch("a", a);
    ASSERT_TRUE(batch_->modify(*handler, 0).has_value()); // waits for nothing
    uint32_t seen = 0;
    handler->whenIo = [&] {
        seen = handler->revents;
        batch_->remove(*handler); // EPOLLHUP is level-triggered: reported until the fd is removed
        loop_->exit(0);
    };
    a.theirs.reset(); // the peer hangs up
    EXPECT_EQ(run(), 0) << "the hang-up of an fd with an empty mask was not reported";
    EXPECT_EQ(handler->ios, 1);
    EXPECT_TRUE(seen & EPOLLHUP);
}

} // namespace
