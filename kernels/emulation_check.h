// emulation_check.h: the CPU racecheck / memcheck / initcheck of emulated kernels.
//
// The checked emulator (tinygen/backend/cuda_kernels/emulator.py, check=True) compiles
// the kernels with g++ -fsanitize=thread, which calls a __tsan_* hook before every load
// and store of kernel code, and this file -- its own translation unit, NOT instrumented,
// libtsan not used -- as the runtime behind those hooks.  emulation.h reports what the
// compiler cannot see (which fiber runs, block start, barrier opening, atomics, fences).
//
// What is watched: the kernel's array arguments (registered per launch with their sizes;
// Python surrounds each with a redzone) and the __shared__ arrays (found from the symbol
// table, each followed by a guard object).  Everything else (fiber stacks, the emulator's
// own globals) is ignored.  Per 4-byte word a shadow cell holds the last write (barrier
// epoch, block, thread, the writer's fence count, pc) and the last read(s).  The epoch
// counter advances whenever a block starts or a barrier opens, so "same epoch" means
// "same block, between the same two barriers".  Reported, with the pcs of both accesses
// (Python turns them into source lines with addr2line):
//   race           two threads of a block touch a word in one barrier epoch, at least one
//                  writing (atomic with atomic is fine): a missing __syncthreads();
//   unfenced       a block touches a word another block wrote (or read) when no fence
//                  discipline orders the two (blocks run in any order, concurrently,
//                  through per-SM L1 caches): the writer must __threadfence() after
//                  writing and before its block's atomic ticket, and the reader must
//                  take a later ticket and fence after it (or read with a volatile
//                  load) -- see tg_is_last_block in common.cuh;
//   uninitialised  a read of __shared__ memory no thread of the block has written;
//   out of bounds  an access to a redzone around an argument or a shared array's guard.
//
// Limits (a checker of the tests' launches, not a proof): one last writer and one last
// reader (or "several", within an epoch) per word; an access far past a redzone or past a
// guard into the next shared array goes unseen; global memory is not initcheck'ed; only
// the orderings this file models (barriers, fences, atomic tickets, volatile loads) count.
//
// The ordering model (a small vector clock over the blocks of one launch): an atomic of
// thread a on global word L RELEASES for its block what every thread had fenced before
// the last barrier (and what a itself had fenced so far), and ACQUIRES into a's pending
// set every earlier release on L (atomics on one word form one chain).  A fence moves the
// thread's pending releases (and those its block shared at a barrier) into its acquired
// set, with everything those releases carried (the releasing thread's own acquired set:
// ordering is transitive across chains of tickets, as in spectral norm's merge tree); a
// barrier shares every thread's pending and acquired sets with the whole block.
// A cross-block access is ordered when one release of the earlier block covers the
// earlier access (fence count past it) and the later thread has acquired it (a volatile
// load: has it pending -- it reads the L2, as the CUDA programming guide's example).
#pragma once

#ifndef TINYGEN_CUDA_CHECK_RUNTIME
#error "emulation_check.h is the checker's runtime: compiled on its own by emulator.py"
#endif

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace tg_check {

using Address = std::uintptr_t;

constexpr std::uint8_t kWritten = 1, kWriteAtomic = 2, kRead = 4, kManyReaders = 8;

struct Shadow {
    std::uint32_t w_epoch = 0, r_epoch = 0;
    std::uint32_t w_block = 0, r_block = 0;
    std::uint32_t w_fences = 0, r_fences = 0;
    std::uint16_t w_thread = 0, r_thread = 0;
    std::uint8_t w_mask = 0, r_mask = 0, flags = 0;
    const void* w_pc = nullptr;
    const void* r_pc = nullptr;
};

enum class Kind : int { Buffer, Shared, Redzone, Guard };

struct Region {
    Address begin = 0, end = 0;
    Kind kind = Kind::Buffer;
    int object = 0;  // index into objects
};

struct Object {
    std::string name;
    Address begin = 0, end = 0;
    int item = 1;  // element size in bytes (1 when unknown)
    Address before = 0, after = 0;  // redzone / guard bytes around it
    bool shared = false;
    std::uint64_t generation = 0;  // shared: the block serial its shadow belongs to
    std::vector<Shadow> shadow;
};

// A set of (atomic location, newest release sequence number on it seen).
using Knowledge = std::vector<std::pair<Address, std::uint64_t>>;

inline void merge(Knowledge& into, Address location, std::uint64_t seq) {
    for (auto& entry : into) {
        if (entry.first == location) {
            entry.second = std::max(entry.second, seq);
            return;
        }
    }
    into.emplace_back(location, seq);
}

inline void merge(Knowledge& into, const Knowledge& from) {
    for (const auto& entry : from) merge(into, entry.first, entry.second);
}

inline bool knows(const Knowledge& k, Address location, std::uint64_t seq) {
    for (const auto& entry : k) {
        if (entry.first == location && entry.second >= seq) return true;
    }
    return false;
}

struct Release {
    Address location;
    std::uint64_t seq;
    std::vector<std::uint32_t> fences;  // per thread of the releasing block
};

struct Report {
    std::string text;  // "@1" and "@2" stand for the source lines of pc1 and pc2
    const void* pc1;
    const void* pc2;
    int count;
};

struct State {
    bool active = false;
    std::vector<Object> objects;         // arguments (per launch) then shared arrays
    std::size_t persistent_objects = 0;  // the shared arrays, registered once
    std::vector<Region> regions;         // sorted by begin, disjoint
    Address lowest = ~Address(0), highest = 0;
    std::uint32_t epoch = 0;
    std::uint64_t block_serial = 0;
    std::uint32_t block = 0;  // linear index of the running block
    unsigned threads = 0;
    unsigned thread = 0;  // the running fiber
    std::vector<std::uint32_t> fences, fences_at_barrier;
    std::vector<Knowledge> pending, acquired;
    Knowledge block_pending, block_acquired;
    std::map<std::uint32_t, std::vector<Release>> releases;  // by block
    std::map<Address, std::uint64_t> last_release;           // by atomic location
    // What each release on a location carried along: the releasing thread's acquired
    // knowledge (so that ordering is transitive: block A -> B -> C through two tickets).
    std::map<Address, std::vector<std::pair<std::uint64_t, Knowledge>>> carried;
    std::uint64_t release_seq = 0;
    std::vector<Report> reports;
    int dropped = 0;
    unsigned grid[3] = {1, 1, 1}, block_dims[3] = {1, 1, 1};
    bool reported_this_access = false;
};

inline State state;

inline std::string coords(unsigned x, unsigned y, unsigned z) {
    return "(" + std::to_string(x) + ", " + std::to_string(y) + ", " + std::to_string(z) + ")";
}

// A linear block or thread index as CUDA coordinates, for the reports.
inline std::string block_name(std::uint32_t b) {
    const unsigned* g = state.grid;
    return "block " + coords(b % g[0], (b / g[0]) % g[1], b / (g[0] * g[1]));
}

inline std::string thread_text(unsigned t) {
    const unsigned* d = state.block_dims;
    return "thread " + coords(t % d[0], (t / d[0]) % d[1], t / (d[0] * d[1]));
}

constexpr std::size_t kMaxReports = 64;




inline void report(const std::string& kind, const std::string& text, const void* pc1,
                   const void* pc2) {
    State& s = state;
    if (s.reported_this_access) return;  // once per access, not per word of it
    s.reported_this_access = true;
    for (auto& r : s.reports) {  // one report per kind and place
        if (r.pc1 == pc1 && r.text.compare(0, kind.size(), kind) == 0) {
            ++r.count;
            return;
        }
    }
    if (s.reports.size() >= kMaxReports) {
        ++s.dropped;
        return;
    }
    s.reports.push_back({text, pc1, pc2, 1});
}

// Where `a` lies in `o`, as an element index when the element size is known (arguments)
// or can be taken from the access (a __shared__ array's type is not in the symbol table).
// An acquire: `into` learns the releases in `pending` and everything those carried.
inline void acquire(Knowledge& into, const Knowledge& pending) {
    const State& s = state;
    for (const auto& [location, seq] : pending) {
        merge(into, location, seq);
        auto it = s.carried.find(location);
        if (it == s.carried.end()) continue;
        for (const auto& [release_seq, knowledge] : it->second) {
            if (release_seq <= seq) merge(into, knowledge);
        }
    }
}

inline std::string where(const Object& o, Address a, unsigned bytes) {
    const Address offset = a - o.begin;
    const unsigned item = o.item > 1 ? unsigned(o.item) : bytes;
    std::string text = (o.shared ? "__shared__ " : "argument ") + o.name;
    if (item > 1 && offset % item == 0) {
        text += "[" + std::to_string(offset / item) + "]";
    } else {
        text += " byte " + std::to_string(offset);
    }
    return text;
}

inline const Region* find(Address a) {
    const State& s = state;
    if (a < s.lowest || a >= s.highest) return nullptr;
    auto it = std::upper_bound(s.regions.begin(), s.regions.end(), a,
                               [](Address x, const Region& r) { return x < r.begin; });
    if (it == s.regions.begin()) return nullptr;
    --it;
    return a < it->end ? &*it : nullptr;
}

// Is block `earlier`'s access (by its thread `thread` with `fences` fences done before it)
// ordered before the current thread's access?  `volatile_read`: the current access is a
// volatile load.  Else explains why not in `why`.
inline bool ordered(std::uint32_t earlier, unsigned thread, std::uint32_t fences,
                    bool volatile_read, std::string& why) {
    State& s = state;
    const unsigned me = s.thread;
    auto it = s.releases.find(earlier);
    bool covered = false;
    bool pending_only = false;
    if (it != s.releases.end()) {
        for (const Release& r : it->second) {
            if (thread >= r.fences.size() || r.fences[thread] <= fences) continue;
            covered = true;
            if (knows(s.acquired[me], r.location, r.seq) ||
                knows(s.block_acquired, r.location, r.seq)) {
                return true;
            }
            if (knows(s.pending[me], r.location, r.seq) ||
                knows(s.block_pending, r.location, r.seq)) {
                if (volatile_read) return true;
                pending_only = true;
            }
        }
    }
    if (it == s.releases.end()) {
        why = "that block took no atomic ticket after the access";
    } else if (!covered) {
        why = "its thread did not __threadfence() between that access and its block's atomic "
              "ticket";
    } else if (pending_only) {
        why = "this block took a later ticket but did not __threadfence() after it (or read "
              "through a volatile load): it may read stale data from L1";
    } else {
        why = "this thread took no later ticket on the same atomic word";
    }
    return false;
}


// One access of `bytes` bytes at `a` (within one object) by the running thread.
inline void access(Address a, unsigned bytes, bool write, bool atomic, bool volatile_access,
                   const void* pc) {
    State& s = state;
    if (!s.active || bytes == 0) return;
    const Region* region = find(a);
    if (region == nullptr) region = find(a + bytes - 1);
    if (region == nullptr) return;
    Object& o = s.objects[region->object];
    s.reported_this_access = false;
    const char* verb = atomic ? "atomic on" : write ? "write of" : "read of";
    if (region->kind == Kind::Redzone || region->kind == Kind::Guard ||
        a < o.begin || a + bytes > o.end) {
        std::string place;
        if (a >= o.end) {
            place = std::to_string(a - o.end) + " bytes past the end of ";
        } else if (a < o.begin) {
            place = std::to_string(o.begin - a) + " bytes before the start of ";
        } else {
            place = "the end of ";
        }
        const std::string size = o.item > 1 ? std::to_string((o.end - o.begin) / o.item) +
                                                   " elements"
                                             : std::to_string(o.end - o.begin) + " bytes";
        report("out of bounds", "out of bounds: " + thread_text(s.thread) + " of " +
                   block_name(s.block) + ": " + verb + " " + std::to_string(bytes) +
                   " bytes " + place + (o.shared ? "__shared__ " : "argument ") + o.name +
                   " (" + size + ") at @1",
               pc, nullptr);
        return;
    }
    if (o.shared && o.generation != s.block_serial) {  // a new block: all uninitialised
        std::fill(o.shadow.begin(), o.shadow.end(), Shadow{});
        o.generation = s.block_serial;
    }
    const unsigned me = s.thread;
    const std::uint32_t my_fences = s.fences[me];
    auto here = [&] { return where(o, a, std::min(bytes, 8u)); };
    for (Address w = a & ~Address(3); w < a + bytes; w += 4) {
        Shadow& c = o.shadow[(w - o.begin) / 4];
        std::uint8_t mask = 0;
        for (Address b = std::max(w, a); b < std::min(w + 4, a + bytes); ++b) {
            mask |= std::uint8_t(1u << (b - w));
        }
        const bool same_epoch_write = (c.flags & kWritten) && c.w_epoch == s.epoch;
        const bool same_epoch_read = (c.flags & kRead) && c.r_epoch == s.epoch;
        // --- threads of one block within one barrier epoch
        if (same_epoch_write && c.w_thread != me && (c.w_mask & mask) &&
            !(atomic && (c.flags & kWriteAtomic))) {
            report("race", "race: " + thread_text(me) + " of " + block_name(s.block) + ": " +
                       verb + " " + here() + " at @1 and the " +
                       ((c.flags & kWriteAtomic) ? "atomic" : "write") + " by " +
                       thread_text(c.w_thread) + " at @2 in the same barrier interval (a "
                       "__syncthreads() missing?)",
                   pc, c.w_pc);
        } else if ((write || atomic) && same_epoch_read && (c.r_mask & mask) &&
                   ((c.flags & kManyReaders) || c.r_thread != me)) {
            report("race", "race: " + thread_text(me) + " of " + block_name(s.block) + ": " +
                       verb + " " + here() + " at @1 and the read by " +
                       ((c.flags & kManyReaders) && c.r_thread == me
                            ? std::string("other threads")
                            : thread_text(c.r_thread)) +
                       " at @2 in the same barrier interval (a __syncthreads() missing?)",
                   pc, c.r_pc);
        }
        // --- uninitialised shared memory
        if (o.shared && !write && !atomic && !(c.flags & kWritten)) {
            report("uninitialised", "uninitialised: " + thread_text(me) + " of " +
                       block_name(s.block) + " reads " + here() + " at @1, which no "
                       "thread of the block has written",
                   pc, nullptr);
        }
        // --- blocks of one grid
        if (!o.shared) {
            std::string why;
            if ((c.flags & kWritten) && c.w_block != s.block &&
                !(atomic && (c.flags & kWriteAtomic))) {
                const bool ok = (c.flags & kWriteAtomic)
                                    ? (knows(s.pending[me], w, 1) || knows(s.acquired[me], w, 1) ||
                                       knows(s.block_acquired, w, 1) ||
                                       knows(s.block_pending, w, 1))
                                    : ordered(c.w_block, c.w_thread, c.w_fences,
                                              volatile_access && !write, why);
                if (!ok) {
                    if (why.empty()) why = "no atomic on that word orders the two blocks";
                    report("unfenced", "unfenced: " + thread_text(me) + " of " +
                               block_name(s.block) + ": " + verb + " " + here() +
                               " at @1, which " + thread_text(c.w_thread) + " of " +
                               block_name(c.w_block) + " wrote at @2, but " + why,
                           pc, c.w_pc);
                }
            } else if ((write || atomic) && (c.flags & kRead) && c.r_block != s.block &&
                       !ordered(c.r_block, c.r_thread, c.r_fences, false, why)) {
                report("unfenced", "unfenced: " + thread_text(me) + " of " +
                           block_name(s.block) + ": " + verb + " " + here() +
                           " at @1, which " + thread_text(c.r_thread) + " of " +
                           block_name(c.r_block) + " read at @2, but " + why,
                       pc, c.r_pc);
            }
        }
        // --- record this access
        if (write || atomic) {
            c.flags = std::uint8_t((c.flags & ~kWriteAtomic) | kWritten |
                                   (atomic ? kWriteAtomic : 0));
            c.w_epoch = s.epoch;
            c.w_block = s.block;
            c.w_thread = std::uint16_t(me);
            c.w_fences = my_fences;
            c.w_mask = mask;
            c.w_pc = pc;
        }
        if (!write && !atomic) {
            if (same_epoch_read && c.r_thread != me) {
                c.flags |= kManyReaders;
                c.r_mask |= mask;
            } else if (!same_epoch_read) {
                c.flags = std::uint8_t((c.flags & ~kManyReaders) | kRead);
                c.r_thread = std::uint16_t(me);
                c.r_mask = mask;
            } else {
                c.r_mask |= mask;
            }
            c.r_epoch = s.epoch;
            c.r_block = s.block;
            c.r_fences = my_fences;
            c.r_pc = pc;
        }
    }
}

}  // namespace tg_check

// --- what emulation.h calls ---------------------------------------------------------------------
extern "C" {

void tg_check_block_begin(unsigned linear_block, unsigned threads) {
    tg_check::State& s = tg_check::state;
    s.block = linear_block;
    s.threads = threads;
    ++s.block_serial;
    ++s.epoch;
    s.fences.assign(threads, 0);
    s.fences_at_barrier.assign(threads, 0);
    s.pending.assign(threads, {});
    s.acquired.assign(threads, {});
    s.block_pending.clear();
    s.block_acquired.clear();
}

void tg_check_thread(unsigned thread) { tg_check::state.thread = thread; }

void tg_check_barrier_open() {
    tg_check::State& s = tg_check::state;
    ++s.epoch;
    for (unsigned t = 0; t < s.threads; ++t) {
        tg_check::merge(s.block_pending, s.pending[t]);
        tg_check::merge(s.block_acquired, s.acquired[t]);
        s.fences_at_barrier[t] = s.fences[t];
    }
}

void tg_check_fence(const void*) {
    tg_check::State& s = tg_check::state;
    if (!s.active) return;
    const unsigned me = s.thread;
    ++s.fences[me];
    tg_check::acquire(s.acquired[me], s.pending[me]);
    tg_check::acquire(s.acquired[me], s.block_pending);
}

void tg_check_atomic(const void* address, unsigned bytes, const void* pc) {
    tg_check::State& s = tg_check::state;
    if (!s.active) return;
    const auto a = reinterpret_cast<tg_check::Address>(address);
    tg_check::access(a, bytes, true, true, false, pc);
    const tg_check::Region* region = tg_check::find(a);
    if (region == nullptr || region->kind != tg_check::Kind::Buffer) return;
    const unsigned me = s.thread;
    auto last = s.last_release.find(a);  // acquire every earlier release on this word
    if (last != s.last_release.end()) tg_check::merge(s.pending[me], a, last->second);
    tg_check::Release r{a, ++s.release_seq, s.fences_at_barrier};
    r.fences[me] = s.fences[me];
    s.releases[s.block].push_back(std::move(r));
    s.last_release[a] = s.release_seq;
    tg_check::Knowledge carried = s.acquired[me];
    tg_check::merge(carried, s.block_acquired);
    s.carried[a].emplace_back(s.release_seq, std::move(carried));
    tg_check::merge(s.pending[me], a, s.release_seq);  // its own atomic: coherence
}

// --- what Python calls (emulator.py) ------------------------------------------------------------
#define TG_CHECK_EXPORT __attribute__((visibility("default")))

// A __shared__ array [begin, begin + bytes) and its guard [begin + bytes, guard_end)
// (guard_end == begin + bytes: none found); once per loaded library.
TG_CHECK_EXPORT void tg_check_add_shared(const char* name, tg_check::Address begin,
                                         unsigned long long bytes, tg_check::Address guard_end) {
    tg_check::State& s = tg_check::state;
    tg_check::Object o;
    o.name = name;
    o.begin = begin;
    o.end = begin + bytes;
    o.after = guard_end > o.end ? guard_end - o.end : 0;
    o.shared = true;
    o.shadow.resize((bytes + 3) / 4);
    s.objects.insert(s.objects.begin() + s.persistent_objects, std::move(o));
    ++s.persistent_objects;
}

// Forgets the previous launch's arguments, findings and orderings.
TG_CHECK_EXPORT void tg_check_begin_launch(const unsigned* grid, const unsigned* block) {
    tg_check::State& s = tg_check::state;
    s.active = false;
    for (int i = 0; i < 3; ++i) {
        s.grid[i] = grid[i];
        s.block_dims[i] = block[i];
    }
    s.objects.resize(s.persistent_objects);
    s.reports.clear();
    s.dropped = 0;
    s.releases.clear();
    s.last_release.clear();
    s.carried.clear();
    s.release_seq = 0;
    s.epoch = 0;
    for (auto& o : s.objects) o.generation = 0;
}

// An array argument [begin, begin + bytes) of `item`-byte elements, with `redzone`
// watched bytes on either side (0: none, e.g. for arguments that alias another).
TG_CHECK_EXPORT void tg_check_add_buffer(const char* name, tg_check::Address begin,
                                         unsigned long long bytes, int item,
                                         unsigned long long redzone) {
    tg_check::State& s = tg_check::state;
    tg_check::Object o;
    o.name = name;
    o.begin = begin;
    o.end = begin + bytes;
    o.item = item > 0 ? item : 1;
    o.before = o.after = redzone;
    o.shadow.resize((bytes + 3) / 4);
    s.objects.push_back(std::move(o));
}

// Builds the address lookup (objects, guards, redzones; a region overlapping an earlier
// one is trimmed) and starts watching.
TG_CHECK_EXPORT void tg_check_start() {
    tg_check::State& s = tg_check::state;
    std::vector<tg_check::Region> all;
    for (std::size_t i = 0; i < s.objects.size(); ++i) {
        const tg_check::Object& o = s.objects[i];
        const auto guard = o.shared ? tg_check::Kind::Guard : tg_check::Kind::Redzone;
        all.push_back({o.begin - o.before, o.begin, guard, int(i)});
        all.push_back({o.begin, o.end, o.shared ? tg_check::Kind::Shared
                                                : tg_check::Kind::Buffer, int(i)});
        all.push_back({o.end, o.end + o.after, guard, int(i)});
    }
    // Objects before redzones at one address: a redzone never hides an argument.
    std::sort(all.begin(), all.end(), [](const tg_check::Region& x, const tg_check::Region& y) {
        if (x.begin != y.begin) return x.begin < y.begin;
        const bool xz = x.kind == tg_check::Kind::Redzone || x.kind == tg_check::Kind::Guard;
        const bool yz = y.kind == tg_check::Kind::Redzone || y.kind == tg_check::Kind::Guard;
        return !xz && yz;
    });
    s.regions.clear();
    tg_check::Address covered = 0;
    for (tg_check::Region r : all) {
        if (r.begin < covered) r.begin = covered;
        if (r.end <= r.begin) continue;
        s.regions.push_back(r);
        covered = r.end;
    }
    s.lowest = s.regions.empty() ? 0 : s.regions.front().begin;
    s.highest = s.regions.empty() ? 0 : s.regions.back().end;
    s.active = true;
}

TG_CHECK_EXPORT void tg_check_stop() { tg_check::state.active = false; }

// Findings of the last launch: their number, then each one's text (with @1 and @2 for
// the source lines of pcs[0] and pcs[1]) and how often it happened.
TG_CHECK_EXPORT int tg_check_report_count() { return int(tg_check::state.reports.size()); }
TG_CHECK_EXPORT int tg_check_dropped_reports() { return tg_check::state.dropped; }

TG_CHECK_EXPORT const char* tg_check_report(int i, const void** pcs, int* count) {
    const tg_check::Report& r = tg_check::state.reports.at(i);
    pcs[0] = r.pc1;
    pcs[1] = r.pc2;
    *count = r.count;
    return r.text.c_str();
}

// --- the hooks g++ -fsanitize=thread emits -----------------------------------------------------
void __tsan_init() {}
void __tsan_func_entry(void*) {}
void __tsan_func_exit() {}
void __tsan_vptr_update(void**, void*) {}
void __tsan_vptr_read(void**) {}
void __tsan_ignore_thread_begin() {}
void __tsan_ignore_thread_end() {}

#define TG_CHECK_HOOKS(N)                                                                      \
    void __tsan_read##N(void* a) {                                                             \
        tg_check::access(tg_check::Address(a), N, false, false, false,                         \
                         __builtin_return_address(0));                                         \
    }                                                                                          \
    void __tsan_write##N(void* a) {                                                            \
        tg_check::access(tg_check::Address(a), N, true, false, false,                          \
                         __builtin_return_address(0));                                         \
    }                                                                                          \
    void __tsan_unaligned_read##N(void* a) {                                                   \
        tg_check::access(tg_check::Address(a), N, false, false, false,                         \
                         __builtin_return_address(0));                                         \
    }                                                                                          \
    void __tsan_unaligned_write##N(void* a) {                                                  \
        tg_check::access(tg_check::Address(a), N, true, false, false,                          \
                         __builtin_return_address(0));                                         \
    }                                                                                          \
    void __tsan_volatile_read##N(void* a) {                                                    \
        tg_check::access(tg_check::Address(a), N, false, false, true,                          \
                         __builtin_return_address(0));                                         \
    }                                                                                          \
    void __tsan_volatile_write##N(void* a) {                                                   \
        tg_check::access(tg_check::Address(a), N, true, false, true,                           \
                         __builtin_return_address(0));                                         \
    }
TG_CHECK_HOOKS(1)
TG_CHECK_HOOKS(2)
TG_CHECK_HOOKS(4)
TG_CHECK_HOOKS(8)
TG_CHECK_HOOKS(16)
#undef TG_CHECK_HOOKS

void __tsan_read_range(void* a, unsigned long size) {
    tg_check::access(tg_check::Address(a), unsigned(size), false, false, false,
                     __builtin_return_address(0));
}
void __tsan_write_range(void* a, unsigned long size) {
    tg_check::access(tg_check::Address(a), unsigned(size), true, false, false,
                     __builtin_return_address(0));
}
}
