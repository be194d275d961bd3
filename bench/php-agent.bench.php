<?php
// Per-request cost of agent.php, measured inside one PHP process: argv = mode, iterations.
// Prints nanoseconds per iteration. Modes: baseline (the same loop without the agent),
// raw_send (a bare non-blocking datagram send), fast, slow, down.
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
        fwrite(STDERR, 'breaker state: ' . @file_get_contents(getenv('BITVILLE_STATE_FILE')) . "\n");
        exit(0);
    default:
        for ($i = 0; $i < $n; $i++) { BitvilleAgent::begin(); BitvilleAgent::finish(); }
}
echo (hrtime(true) - $t) / $n, "\n";
