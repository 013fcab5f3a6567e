//! A forwarding-table lookup that hits the cache allocates nothing: counted by a global
//! allocator that counts only the test thread's allocations while asked to.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use vnetd::forward::{Decision, Ingress, Out, Role, Table};
use vnetd::model::{DstMatch, Mac, Name, Rule, SrcMatch, Target};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed on unchanged to the system allocator, which upholds
// `GlobalAlloc`'s contract; counting touches only an atomic and a const thread-local `Cell`,
// neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller upholds `alloc`'s contract, which `System.alloc` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes there).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as for `dealloc`, and the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn n(s: &str) -> Name {
    s.parse().expect("valid name")
}

#[test]
fn forward_lookup_hit_does_not_allocate() {
    let vm1 = Mac([0x02, 0, 0, 0, 0, 1]);
    let vm3 = Mac([0x02, 0, 0, 0, 0, 3]);
    let mut table = Table::new(Role::Host { proxy: n("proxy") }, n("host1"));
    table.attach_port(n("vm1"));
    table.attach_port(n("vm2"));
    table.link_up(n("proxy"));
    table.link_up(n("host3"));
    for (dst, target) in [
        (DstMatch::Is(vm3), Target::Link(n("host3"))),
        (DstMatch::None, Target::Link(n("proxy"))),
    ] {
        table
            .add_rule(Rule {
                src: SrcMatch::Any,
                dst,
                target,
            })
            .expect("valid rule");
    }
    let ingress = Ingress::Port(n("vm1"));
    let id = table.ingress_id(&ingress).expect("attached");
    let other = Mac([0x02, 0, 0, 0, 0, 9]);
    // Warm the cache: unicast (fast path, default rule, split horizon drop) and flood.
    let frames = [vm3, other, Mac::BROADCAST];
    for dst in frames {
        table.lookup_id(id, vm1, dst);
        table.lookup(&ingress, vm1, dst);
    }
    let misses = table.counters().misses;

    COUNTING.with(|c| c.set(true));
    let mut forwarded = 0;
    for _ in 0..1000 {
        for dst in frames {
            if let Decision::Forward(Out::Link(_)) = table.lookup_id(id, vm1, dst) {
                forwarded += 1;
            }
            if let Decision::Flood(outs) = table.lookup(&ingress, vm1, dst) {
                forwarded += outs.len();
            }
        }
    }
    COUNTING.with(|c| c.set(false));

    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 0);
    assert_eq!(table.counters().misses, misses);
    assert_eq!(forwarded, 1000 * (2 + 2));

    // The counter does count.
    COUNTING.with(|c| c.set(true));
    std::hint::black_box(Vec::<u8>::with_capacity(8));
    COUNTING.with(|c| c.set(false));
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 1);
}
