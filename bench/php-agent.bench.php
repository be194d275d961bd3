<?php
// Per-request cost of agent.php, measured inside one PHP process: argv = mode, iterations.
// Prints nanoseconds per iteration. Modes: baseline (the same loop without the agent),
// raw_send (a bare non-blocking datagram send), excimer_bare (new ExcimerProfiler, start, stop),
// fast, slow, down (whether excimer is loaded is up to the caller's php.ini scan directory).
require __DIR__ . '/../agents/php/agent.php';

final class Bare
{
    public static function begin(): void {}
    public static function finish(): void {}
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
