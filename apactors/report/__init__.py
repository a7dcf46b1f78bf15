"""Reports in the kernel's shapes: lockdep's warnings, /proc/lockdep, /proc/lockdep_stats, /proc/lock_stat,
and the lock-class graph as Graphviz DOT (``apactors lockdep``)."""
