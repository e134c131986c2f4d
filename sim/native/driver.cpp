// sparq's native driver: runs job scripts against a Verilated design, with no VPI and no Python in the loop.
//
// Compiled once per design with the generated header "sparq_ports.h" (the design's ports and streams, see
// sparq/sim/native/build.py) and linked with the Verilated model. It reads jobs from stdin and answers each on stdout,
// until stdin closes; the wire format is written down in sparq/sim/native/script.py, the only other side of it.
//
// Timing is that of sparq.sim.bench (cocotb and Amaranth benches): in every cycle the agents drive the inputs, the
// design settles, the agents and the stream monitors sample the settled values, then the clock rises. A transfer
// happens at an edge where valid and ready were both high just before it. The stream agents copy
// sparq.sim.bench.StreamSource / StreamSink decision for decision, and the random numbers are CPython's
// random.Random (MT19937 seeded by init_by_array, random() from 53 bits), so a job makes the same valid gaps and the
// same back-pressure as the Python body it mirrors, cycle for cycle.
//
// Usage: sparq_native [--fst PATH] [--coverage PATH]  (--fst only in a build with --trace-fst, --coverage only in one
// with Verilator's --coverage-*: after each job that succeeds, the job's coverage counts are written to PATH, in
// Verilator's coverage.dat format, and zeroed, so PATH always holds the counts of the last job alone)

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "Vtop.h"
#include "verilated.h"
#if VM_TRACE
#include "verilated_fst_c.h"
#endif
#if VM_COVERAGE
#include "verilated_cov.h"
#endif

namespace sparq {

struct Port {
    const char* name;
    int width;
    int words;  // 32-bit words of a value
    bool input;
};

struct Stream {
    const char* name;
    int valid, ready, payload;  // port indices; ready -1 for an always-ready stream, payload -1 for none
};

inline void put(CData& s, const uint32_t* w) { s = static_cast<CData>(w[0]); }
inline void put(SData& s, const uint32_t* w) { s = static_cast<SData>(w[0]); }
inline void put(IData& s, const uint32_t* w) { s = w[0]; }
inline void put(QData& s, const uint32_t* w) { s = static_cast<QData>(w[0]) | static_cast<QData>(w[1]) << 32; }
template <std::size_t N>
inline void put(VlWide<N>& s, const uint32_t* w) {
    for (std::size_t i = 0; i < N; ++i) s[i] = w[i];
}
inline void get(const CData& s, uint32_t* w) { w[0] = s; }
inline void get(const SData& s, uint32_t* w) { w[0] = s; }
inline void get(const IData& s, uint32_t* w) { w[0] = s; }
inline void get(const QData& s, uint32_t* w) {
    w[0] = static_cast<uint32_t>(s);
    w[1] = static_cast<uint32_t>(s >> 32);
}
template <std::size_t N>
inline void get(const VlWide<N>& s, uint32_t* w) {
    for (std::size_t i = 0; i < N; ++i) w[i] = s[i];
}

}  // namespace sparq

#include "sparq_ports.h"  // SPARQ_PORTS, SPARQ_STREAMS, SPARQ_N_STREAMS, SPARQ_RESET_PORT, sparq_write(), sparq_read()

namespace {

constexpr uint32_t MAGIC = 0x31515053;  // "SPQ1"
constexpr int N_PORTS = sizeof(SPARQ_PORTS) / sizeof(SPARQ_PORTS[0]);
constexpr int N_STREAMS = SPARQ_N_STREAMS;  // SPARQ_STREAMS has a placeholder entry when it is 0
enum Op : uint32_t { SEED = 1, RESET = 2, SET = 3, TICK = 4, RUN = 5, WAIT = 6, SNAPSHOT = 7 };

struct Failure {
    std::string message;
};

// CPython's random.Random: MT19937, seeded with init_by_array(key) from abs(seed) in 32-bit words, random() as in
// _randommodule.c.
class PythonRandom {
  public:
    void seed(const std::vector<uint32_t>& key) {
        init_genrand(19650218U);
        uint32_t i = 1, j = 0;
        const uint32_t n = key.size();
        for (uint32_t k = N > n ? N : n; k; --k) {
            mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1664525U)) + key[j] + j;
            ++i, ++j;
            if (i >= N) mt[0] = mt[N - 1], i = 1;
            if (j >= n) j = 0;
        }
        for (uint32_t k = N - 1; k; --k) {
            mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1566083941U)) - i;
            if (++i >= N) mt[0] = mt[N - 1], i = 1;
        }
        mt[0] = 0x80000000U;
    }
    double random() {
        const uint32_t a = genrand() >> 5, b = genrand() >> 6;
        return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
    }

  private:
    static constexpr uint32_t N = 624, M = 397;
    uint32_t mt[N];
    uint32_t mti = N + 1;
    void init_genrand(uint32_t s) {
        mt[0] = s;
        for (mti = 1; mti < N; ++mti) mt[mti] = 1812433253U * (mt[mti - 1] ^ (mt[mti - 1] >> 30)) + mti;
    }
    uint32_t genrand() {
        static const uint32_t mag01[2] = {0U, 0x9908b0dfU};
        if (mti >= N) {
            uint32_t kk = 0, y;
            for (; kk < N - M; ++kk) {
                y = (mt[kk] & 0x80000000U) | (mt[kk + 1] & 0x7fffffffU);
                mt[kk] = mt[kk + M] ^ (y >> 1) ^ mag01[y & 1U];
            }
            for (; kk < N - 1; ++kk) {
                y = (mt[kk] & 0x80000000U) | (mt[kk + 1] & 0x7fffffffU);
                mt[kk] = mt[kk + (M - N)] ^ (y >> 1) ^ mag01[y & 1U];
            }
            y = (mt[N - 1] & 0x80000000U) | (mt[0] & 0x7fffffffU);
            mt[N - 1] = mt[M - 1] ^ (y >> 1) ^ mag01[y & 1U];
            mti = 0;
        }
        uint32_t y = mt[mti++];
        y ^= (y >> 11);
        y ^= (y << 7) & 0x9d2c5680U;
        y ^= (y << 15) & 0xefc60000U;
        y ^= (y >> 18);
        return y;
    }
};

std::string hex(const uint32_t* w, int words) {
    std::string s = "0x";
    char buf[9];
    bool leading = true;
    for (int i = words - 1; i >= 0; --i) {
        if (leading && w[i] == 0 && i) continue;
        std::snprintf(buf, sizeof buf, leading ? "%x" : "%08x", w[i]);
        s += buf;
        leading = false;
    }
    return s;
}

// The stream rules, checked every cycle on every stream port of the design, whoever drives it: while valid is high
// and ready low, valid stays high and the payload stays the same until the transfer. Cycles across a reset edge
// are not compared.
struct Monitor {
    const sparq::Stream* stream;
    int words = 0;
    bool have = false, prev_valid = false, prev_ready = false, prev_reset = false;
    std::vector<uint32_t> prev, now;
    uint64_t transfers = 0, stalled = 0, starved = 0;
};

class Sim {
  public:
    Sim(const char* fst_path) : top(new Vtop) {
#if VM_TRACE
        if (fst_path) {
            Verilated::traceEverOn(true);
            trace.reset(new VerilatedFstC);
            top->trace(trace.get(), 99);
            trace->open(fst_path);
        }
#else
        if (fst_path) throw Failure{"this build has no waveform support (build it with waves=True)"};
#endif
        for (int s = 0; s < N_STREAMS; ++s) {
            Monitor m;
            m.stream = &SPARQ_STREAMS[s];
            m.words = m.stream->payload >= 0 ? SPARQ_PORTS[m.stream->payload].words : 0;
            m.prev.assign(m.words, 0);
            m.now.assign(m.words, 0);
            monitors.push_back(m);
        }
        top->clk = 0;
        top->eval();
    }
    ~Sim() {
#if VM_TRACE
        if (trace) trace->close();
#endif
        top->final();
    }

    void write(int port, const uint32_t* w) { sparq_write(top.get(), port, w); }
    void read(int port, uint32_t* w) const { sparq_read(top.get(), port, w); }
    uint32_t bit(int port) const {
        uint32_t w[2] = {0, 0};
        if (SPARQ_PORTS[port].words > 2) {
            std::vector<uint32_t> all(SPARQ_PORTS[port].words);
            read(port, all.data());
            for (uint32_t x : all)
                if (x) return 1;
            return 0;
        }
        read(port, w);
        return w[0] | w[1];
    }
    void write_bit(int port, uint32_t value) {
        uint32_t w[2] = {value, 0};
        write(port, w);
    }

    // Let the inputs of this cycle settle (the first half of a cycle).
    void settle() {
        top->clk = 0;
        top->eval();
        dump(10 * cycle + 5);
    }
    // Sample the monitors on the settled values, then the rising edge (the second half of a cycle).
    void edge() {
        monitor();
        top->clk = 1;
        top->eval();
        ++cycle;
        dump(10 * cycle);
    }
    void tick(uint64_t n) {
        for (uint64_t i = 0; i < n; ++i) {
            settle();
            edge();
        }
    }

    uint64_t cycle = 0;
    PythonRandom rng;
    std::vector<Monitor> monitors;

  private:
    std::unique_ptr<Vtop> top;
#if VM_TRACE
    std::unique_ptr<VerilatedFstC> trace;
#endif
    void dump(uint64_t time) {
#if VM_TRACE
        if (trace) trace->dump(time);
#else
        (void)time;
#endif
    }
    void monitor() {
        const bool in_reset = bit(SPARQ_RESET_PORT);
        for (Monitor& m : monitors) {
            const bool valid = bit(m.stream->valid);
            const bool ready = m.stream->ready < 0 || bit(m.stream->ready);
            if (m.words) read(m.stream->payload, m.now.data());
            if (m.have && !m.prev_reset && m.prev_valid && !m.prev_ready) {
                const std::string where = std::string("stream rule broken on `") + m.stream->name + "` at cycle " +
                                          std::to_string(cycle) + ": ";
                if (!valid)
                    throw Failure{where + "valid fell before its transfer (valid high and ready low at cycle " +
                                  std::to_string(cycle - 1) + ")"};
                if (m.now != m.prev)
                    throw Failure{where + "the payload changed from " + hex(m.prev.data(), m.words) + " to " +
                                  hex(m.now.data(), m.words) + " while ready was low (valid high since cycle " +
                                  std::to_string(cycle - 1) + " at the latest)"};
            }
            m.transfers += valid && ready;
            m.stalled += valid && !ready;
            m.starved += !valid && ready;
            m.have = true;
            m.prev_valid = valid, m.prev_ready = ready, m.prev_reset = in_reset;
            m.prev.swap(m.now);
        }
    }
};

// A job script being read: a cursor over its words.
struct Reader {
    const uint32_t* p;
    const uint32_t* end;
    uint32_t next() {
        if (p >= end) throw Failure{"job script ends in the middle of an operation (sparq.sim.native bug)"};
        return *p++;
    }
    uint64_t next64() {
        const uint64_t lo = next();
        return lo | static_cast<uint64_t>(next()) << 32;
    }
    double next_double() {
        const uint64_t bits = next64();
        double d;
        std::memcpy(&d, &bits, sizeof d);
        return d;
    }
    const uint32_t* take(uint64_t n) {
        if (static_cast<uint64_t>(end - p) < n) throw Failure{"job script too short (sparq.sim.native bug)"};
        const uint32_t* q = p;
        p += n;
        return q;
    }
};

int port_arg(Reader& r) {
    const uint32_t port = r.next();
    if (port >= static_cast<uint32_t>(N_PORTS)) throw Failure{"no port " + std::to_string(port)};
    return static_cast<int>(port);
}

// sparq.sim.bench.StreamSource and StreamSink, decision for decision.
struct Agent {
    bool source;
    const sparq::Stream* stream;
    uint64_t count;
    double probability;  // gap (source) or stall (sink) probability
    bool waited_for;     // counts for the end of the run
    int words;           // of the payload
    const uint32_t* items = nullptr;  // source: count * words
    uint64_t done_items = 0;           // sent or received
    bool flag = false;                 // source: valid; sink: ready
    std::vector<uint32_t>* out = nullptr;
    std::vector<uint32_t> scratch;

    bool done() const { return done_items == count; }
    void drive(Sim& sim) {
        if (source) {
            if (!flag && !done()) flag = sim.rng.random() >= probability;
            sim.write_bit(stream->valid, flag);
            if (flag && words) sim.write(stream->payload, items + done_items * words);
        } else if (stream->ready < 0) {
            flag = true;  // an always-ready stream: every valid item is taken, no back-pressure to draw
        } else {
            flag = sim.rng.random() >= probability;
            sim.write_bit(stream->ready, flag);
        }
    }
    void sample(Sim& sim) {
        if (source) {
            if (flag && (stream->ready < 0 || sim.bit(stream->ready))) {
                ++done_items;
                flag = false;
            }
        } else if (flag && sim.bit(stream->valid)) {
            scratch.resize(words);
            if (words) sim.read(stream->payload, scratch.data());
            if (done())
                throw Failure{std::string("`") + stream->name + "`: unexpected extra item " +
                              hex(scratch.data(), words) + " after the " + std::to_string(count) + " expected"};
            out->insert(out->end(), scratch.begin(), scratch.end());
            ++done_items;
        }
    }
    std::string describe() const {
        return std::string(source ? "StreamSource('" : "StreamSink('") + stream->name + "', " +
               (source ? "sent " : "got ") + std::to_string(done_items) + " of " + std::to_string(count) + ")";
    }
};

// Bench.run: until every agent that is waited for is done and the optional until port is high, or the optional
// stop port is high; at most max_cycles. Appends each sink's items, then each agent's count of items done.
void run_agents(Sim& sim, Reader& r, std::vector<uint32_t>& data) {
    const uint32_t n = r.next();
    const uint32_t until_port = r.next(), stop_port = r.next();
    const uint64_t max_cycles = r.next64();
    std::vector<Agent> agents(n);
    for (Agent& a : agents) {
        a.source = r.next() == 0;
        const uint32_t s = r.next();
        if (s >= static_cast<uint32_t>(N_STREAMS)) throw Failure{"no stream " + std::to_string(s)};
        a.stream = &SPARQ_STREAMS[s];
        a.count = r.next64();
        a.probability = r.next_double();
        a.waited_for = r.next() != 0;
        a.words = a.stream->payload >= 0 ? SPARQ_PORTS[a.stream->payload].words : 0;
        if (a.source) a.items = r.take(a.count * a.words);
    }
    // Sinks write into data in the order they are listed; each reserves its place first.
    std::vector<std::vector<uint32_t>> outputs(n);
    for (uint32_t i = 0; i < n; ++i)
        if (!agents[i].source) {
            outputs[i].reserve(agents[i].count * agents[i].words);
            agents[i].out = &outputs[i];
        }
    auto finished = [&] {
        if (stop_port != UINT32_MAX && sim.bit(static_cast<int>(stop_port))) return true;
        for (const Agent& a : agents)
            if (a.waited_for && !a.done()) return false;
        return until_port == UINT32_MAX || sim.bit(static_cast<int>(until_port));
    };
    uint64_t cycle = 0;
    for (; cycle < max_cycles; ++cycle) {
        if (finished()) break;
        for (Agent& a : agents) a.drive(sim);
        sim.settle();
        for (Agent& a : agents) a.sample(sim);
        sim.edge();
    }
    if (cycle == max_cycles && !finished()) {
        std::string busy;
        for (const Agent& a : agents)
            if (!a.done()) busy += (busy.empty() ? "" : ", ") + a.describe();
        throw Failure{"no completion after " + std::to_string(max_cycles) + " cycles; still busy: " +
                      (busy.empty() ? "none" : busy)};
    }
    // A source with nothing left to send drops valid (it offered its last item until that was taken).
    for (Agent& a : agents)
        if (a.source && a.done()) sim.write_bit(a.stream->valid, 0);
    for (uint32_t i = 0; i < n; ++i) data.insert(data.end(), outputs[i].begin(), outputs[i].end());
    for (const Agent& a : agents) {
        data.push_back(static_cast<uint32_t>(a.done_items));
        data.push_back(static_cast<uint32_t>(a.done_items >> 32));
    }
}

void execute(Sim& sim, Reader& r, std::vector<uint32_t>& data, std::vector<uint64_t>& timing) {
    std::vector<uint32_t> value;
    while (r.p < r.end) {
        const auto started = std::chrono::steady_clock::now();
        const uint64_t first_cycle = sim.cycle;
        switch (r.next()) {
        case SEED: {
            const uint32_t n = r.next();
            const uint32_t* key = r.take(n);
            sim.rng.seed(std::vector<uint32_t>(key, key + n));
            break;
        }
        case RESET: {
            const uint64_t n = r.next();
            sim.write_bit(SPARQ_RESET_PORT, 1);
            sim.tick(n);
            sim.write_bit(SPARQ_RESET_PORT, 0);
            break;
        }
        case SET: {
            const int port = port_arg(r);
            if (!SPARQ_PORTS[port].input)
                throw Failure{std::string("port ") + SPARQ_PORTS[port].name + " is an output"};
            sim.write(port, r.take(SPARQ_PORTS[port].words));
            break;
        }
        case TICK:
            sim.tick(r.next64());
            break;
        case RUN:
            run_agents(sim, r, data);
            break;
        case WAIT: {  // the Python bodies' polling wait: check, then tick `poll` cycles
            const int port = port_arg(r);
            const uint64_t poll = r.next(), max_cycles = r.next64();
            uint64_t waited = 0;
            while (!sim.bit(port)) {
                sim.tick(poll);
                waited += poll;
                if (waited > max_cycles)
                    throw Failure{std::string("no ") + SPARQ_PORTS[port].name + " after " + std::to_string(waited) +
                                  " cycles"};
            }
            break;
        }
        case SNAPSHOT: {
            const uint32_t n = r.next();
            for (uint32_t i = 0; i < n; ++i) {
                const int port = port_arg(r);
                value.resize(SPARQ_PORTS[port].words);
                sim.read(port, value.data());
                data.insert(data.end(), value.begin(), value.end());
            }
            break;
        }
        default:
            throw Failure{"unknown operation in the job script (sparq.sim.native bug)"};
        }
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                                             started).count();
        timing.push_back(sim.cycle - first_cycle);
        timing.push_back(static_cast<uint64_t>(ns));
    }
}

bool read_exact(void* buffer, size_t bytes) { return std::fread(buffer, 1, bytes, stdin) == bytes; }

void write_words(const uint32_t* w, size_t n) { std::fwrite(w, 4, n, stdout); }

}  // namespace

int main(int argc, char** argv) {
    const char* fst = nullptr;
    const char* coverage = nullptr;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--fst") && i + 1 < argc) fst = argv[++i];
        else if (!std::strcmp(argv[i], "--coverage") && i + 1 < argc) coverage = argv[++i];
    }
#if !VM_COVERAGE
    if (coverage) {
        std::fprintf(stderr, "this build has no coverage support (build it with coverage=True)\n");
        return 2;
    }
#endif
    Verilated::commandArgs(1, argv);  // no plusargs: +verilator+rand+reset stays 0 (zero initial state)
    std::unique_ptr<Sim> sim;
    std::vector<uint32_t> job, data;
    std::vector<uint64_t> timing;
    uint32_t header[2];
    while (read_exact(header, sizeof header)) {
        uint32_t status = 0, failed_op = 0;
        std::string message;
        data.clear();
        timing.clear();
        try {
            if (header[0] != MAGIC) throw Failure{"bad job header (sparq.sim.native bug)"};
            job.resize(header[1]);
            if (!read_exact(job.data(), 4 * job.size())) throw Failure{"job truncated"};
            if (!sim) sim.reset(new Sim(fst));
            Reader reader{job.data(), job.data() + job.size()};
            execute(*sim, reader, data, timing);
#if VM_COVERAGE
            if (coverage) {
                Verilated::threadContextp()->coveragep()->write(coverage);
                Verilated::threadContextp()->coveragep()->zero();
            }
#endif
        } catch (const Failure& f) {
            status = 1, message = f.message, failed_op = timing.size() / 2;
        }
        const uint32_t reply[3] = {MAGIC, status, status ? failed_op : static_cast<uint32_t>(data.size())};
        write_words(reply, 3);
        if (status) {
            const uint32_t length = message.size();
            write_words(&length, 1);
            std::fwrite(message.data(), 1, length, stdout);
            std::fflush(stdout);
            return 2;  // the design's state is unknown now: the caller starts a new process
        }
        write_words(data.data(), data.size());
        const uint32_t n_timing = timing.size();
        write_words(&n_timing, 1);
        std::fwrite(timing.data(), 8, timing.size(), stdout);
        for (const Monitor& m : sim->monitors) {
            const uint64_t stats[3] = {m.transfers, m.stalled, m.starved};
            std::fwrite(stats, 8, 3, stdout);
        }
        std::fflush(stdout);
    }
    return 0;
}
