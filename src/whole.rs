//! Locks taken whole even when poisoned.
//!
//! Every lock of this kind in the server guards a map, a set or a slot that its holders
//! change by single inserts, removes and replacements, none of which a panic can leave half
//! done; a holder that panicked (a bug in a step, say) left the data as valid as it found
//! it. Refusing every later caller for it (`PoisonError`) would turn one failed request into
//! a server that fails every request touching the lock, so the data is taken as it is.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn read<T>(rw: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    rw.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn write<T>(rw: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    rw.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_poisoned_by_a_panicking_holder_is_taken_with_its_data() {
        let m = std::sync::Arc::new(Mutex::new(vec![1]));
        let rw = std::sync::Arc::new(RwLock::new(1));
        let (m2, rw2) = (m.clone(), rw.clone());
        let _ = std::thread::spawn(move || {
            let _m = m2.lock().unwrap();
            let _rw = rw2.write().unwrap();
            panic!("a holder fails");
        })
        .join();
        assert!(m.is_poisoned() && rw.is_poisoned());
        lock(&m).push(2);
        assert_eq!(*lock(&m), [1, 2]);
        *write(&rw) += 1;
        assert_eq!(*read(&rw), 2);
    }
}
