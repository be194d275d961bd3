<?php
// Per-request cost of agent.php, measured inside one PHP process: argv = mode, iterations.
// Prints nanoseconds per iteration. Modes: baseline (the same loop without the agent),
// raw_send (a bare non-blocking datagram send), excimer_bare (new ExcimerProfiler, start, stop),
// excimer_due_bare (a one-shot ExcimerTimer armed and disarmed, as agent.php's delayed start),
// sample_cost (CPU per excimer sample), fast, slow, down (whether excimer is loaded is up to
// the caller's php.ini scan directory).
require __DIR__ . '/../agents/php/agent.php';

final class Bare
{
    public static function begin(): void {}
    public static function finish(): void {}
}

/**
 * Excimer 1.0.4 can abort the process at exit when a sample's notification thread (glibc starts
 * one per expiry) is still running as the extension shuts down: give stragglers time to finish.
 */
function settle(): void
{
    if (extension_loaded('excimer')) {
        usleep(50000);
    }
}

$mode = $argv[1];
$n = (int) $argv[2];
$socket = getenv('BITVILLE_SOCKET');
$payload = str_repeat('x', 600);
$t = hrtime(true);
switch ($mode) {
    case 'baseline':
        for ($i = 0; $i < $n; $i++) { Bare::begin(); Bare::finish(); }
        break;
    case 'raw_send':
        // The bare operation agent.php does on the slow path (ext-sockets), paced like slow.
        $spent = 0;
        for ($i = 0; $i < $n; $i++) {
            $t0 = hrtime(true);
            $s = socket_create(AF_UNIX, SOCK_DGRAM, 0);
            @socket_sendto($s, $payload, strlen($payload), MSG_DONTWAIT, $socket);
            socket_close($s);
            $spent += hrtime(true) - $t0;
            usleep(1000);
        }
        echo $spent / $n, "\n";
        exit(0);
    case 'excimer_bare':
        // The bare cost the profiler adds to every request: arm and disarm a wall-clock timer.
        for ($i = 0; $i < $n; $i++) {
            $p = new ExcimerProfiler();
            $p->setEventType(EXCIMER_REAL);
            $p->setPeriod(0.01);
            $p->start();
            $p->stop();
        }
        break;
    case 'excimer_due_bare':
        // What a request that ends before profile_delay_ms pays: a one-shot timer due later.
        for ($i = 0; $i < $n; $i++) {
            $due = new ExcimerTimer();
            $due->setEventType(EXCIMER_REAL);
            $due->setInterval(0.05);
            $due->setCallback(static function () {});
            $due->start();
            $due->stop();
        }
        break;
    case 'sample_cost':
        // CPU time (every thread of the process) one sample costs: $n short sleeps (a request
        // waiting on I/O, so the process's own CPU is small and steady) with and without a 1 ms
        // profiler, the difference per sample taken.
        $cpu = static function (): float {
            $r = getrusage();
            return ($r['ru_utime.tv_sec'] + $r['ru_stime.tv_sec']) * 1e9 + ($r['ru_utime.tv_usec'] + $r['ru_stime.tv_usec']) * 1e3;
        };
        $c0 = $cpu();
        for ($i = 0; $i < $n; $i++) { usleep(1000); }
        $plain = $cpu() - $c0;
        $p = new ExcimerProfiler();
        $p->setEventType(EXCIMER_REAL);
        $p->setPeriod(0.001);
        $p->setMaxDepth(128);
        $c0 = $cpu();
        $p->start();
        for ($i = 0; $i < $n; $i++) { usleep(1000); }
        $p->stop();
        $profiled = $cpu() - $c0;
        echo ($profiled - $plain) / max(1, $p->getLog()->getEventCount()), "\n";
        settle();
        exit(0);
    case 'slow':
        // Paced so the daemon's datagram queue (net.unix.max_dgram_qlen, 10 by default) never fills:
        // this measures a delivered send, not a refused one. Only begin+finish are timed.
        $spent = 0;
        for ($i = 0; $i < $n; $i++) {
            $t0 = hrtime(true);
            BitvilleAgent::begin();
            BitvilleAgent::finish();
            $spent += hrtime(true) - $t0;
            usleep(1000);
        }
        echo $spent / $n, "\n";
        $state = @file_get_contents(getenv('BITVILLE_STATE_FILE'));
        if ($state !== false && (int) $state > 0) {
            fwrite(STDERR, "note: sends failed during the slow path (breaker state: $state)\n");
        }
        exit(0);
    default:
        for ($i = 0; $i < $n; $i++) { BitvilleAgent::begin(); BitvilleAgent::finish(); }
}
echo (hrtime(true) - $t) / $n, "\n";
settle();
