<?php
// Bitville PHP agent: load with `auto_prepend_file`. PHP 7.4+, no extension, no Composer.
//
// At request start it fixes a correlation id (the W3C trace id: taken from a valid incoming
// `traceparent`, else 16 random bytes) and sets PGAPPNAME=req:<id>/<pid>@<host key>, so every
// new libpq connection (pgsql, pdo_pgsql) reports it as application_name: the id, and which
// process set it (a persistent connection stays in that process, see applicationName()). At the
// very end of the request (after fastcgi_finish_request() where it exists), a request that took
// at least the threshold is sent as one JSON datagram to the php-agent daemon over a Unix datagram socket.
//
// It never blocks, throws or prints: the send is non-blocking, every failure is swallowed and
// counted, and a circuit breaker (5 consecutive failures, then no attempt for 60 s; state in
// APCu or in a small file replaced atomically) makes a dead daemon cost next to nothing.
// With the excimer extension loaded (optional), a request's stack is sampled on a wall-clock
// timer (default every 10 ms) once it has run a tenth of the threshold (profile_delay_ms); a
// slow request sends its profile as collapsed stacks, cut by weight to fit the datagram, and a
// fast one throws it away.
// Settings, each from the environment (BITVILLE_*) or else php.ini (bitville.*): see
// docs/php-agent.md. Application API: the static methods of BitvilleAgent marked "API".

if (!class_exists('BitvilleAgent', false)) {
    final class BitvilleAgent
    {
        const BREAKER_FAILURES = 5;
        const BREAKER_OPEN_SECONDS = 60;
        const MAX_FIELD = 2048;
        /** The daemon drops a datagram of 64 KiB or more; stay clear of it with room for the JSON. */
        const MAX_DATAGRAM = 63000;
        /** Frames kept per sampled stack (excimer keeps the innermost ones and drops the outer rest). */
        const PROFILE_MAX_DEPTH = 128;

        /** @var string */ private static $traceId = '';
        /** @var string */ private static $spanId = '';
        /** @var string */ private static $parentSpanId = '';
        /** @var int */ private static $startNs = 0;
        /** @var float */ private static $startWall = 0.0;
        /** @var int */ private static $thresholdNs = 500000000;
        /** @var bool */ private static $active = false;
        /** @var ExcimerProfiler|null sampling this request (null without excimer, with profiling off, or not yet due) */
        private static $profiler = null;
        /** @var ExcimerTimer|null the one-shot timer that starts the profiler once the request has run profile_delay_ms */
        private static $profilerDue = null;
        /** @var float */ private static $profilePeriodMs = 0.0;
        /** @var int */ private static $profileDelayNs = 0;
        /** @var array|null [collapsed stack, samples] for the time the profiler started late (see startDueProfiler) */
        private static $lateStack = null;
        /** @var WeakMap|null PDO objects tagged in this request (weak: a closed connection is not kept alive). */
        private static $taggedPdo = null;

        /** API: the correlation id of this request (32 lowercase hex, the W3C trace id). */
        public static function correlationId(): string
        {
            return self::$traceId;
        }

        /** API: a W3C traceparent naming this request's span, for outgoing calls. */
        public static function traceparent(): string
        {
            return self::$traceId === '' ? '' : '00-' . self::$traceId . '-' . self::$spanId . '-01';
        }

        /**
         * API: the application_name PostgreSQL sees for this request: `req:<id>/<pid>@<host key>`,
         * the host key being the first 8 hex digits of SHA-256(gethostname()), 53 bytes at most
         * (PostgreSQL keeps 63). The worker part lets the collector give a statement on a
         * persistent connection still tagged by an earlier request to the request this process
         * was running then, even when that earlier request was never sent.
         */
        public static function applicationName(): string
        {
            return self::$traceId === '' ? '' : 'req:' . self::$traceId . '/' . getmypid() . '@' . self::hostKey();
        }

        /** The short host discriminator of the tag (the collector derives the same from host.name). */
        private static function hostKey(): string
        {
            static $key = null;
            if ($key === null) {
                $host = gethostname();
                $key = substr(hash('sha256', $host === false ? '' : $host), 0, 8);
            }
            return $key;
        }

        /** API: $sql with a sqlcommenter comment carrying traceparent, so DB spans get their exact parent. */
        public static function sqlComment(string $sql): string
        {
            if (self::$traceId === '') {
                return $sql;
            }
            $trimmed = rtrim($sql);
            $semicolon = substr($trimmed, -1) === ';';
            if ($semicolon) {
                $trimmed = substr($trimmed, 0, -1);
            }
            return $trimmed . " /*traceparent='" . rawurlencode(self::traceparent()) . "'*/" . ($semicolon ? ';' : '');
        }

        /**
         * API: for a persistent connection (where PGAPPNAME does not apply, the connection being
         * older than the request), set application_name on it. Takes a PDO (pgsql driver) or a
         * pgsql connection; returns false on any failure, never throws. Call it after connecting
         * and outside a transaction (a rolled-back SET is undone).
         *
         * pgsql: pg_pconnect() runs RESET ALL on every reuse, which puts back the tag of the
         * request that opened the connection, so tag after each pg_pconnect() (or use pconnect()
         * below). The server reports every change of application_name to libpq, so the current
         * value is known locally: an already tagged connection costs no round trip.
         * PDO: a reused persistent connection is not reset; one SET per PDO object and request.
         */
        public static function tagConnection($connection): bool
        {
            if (self::$traceId === '') {
                return false;
            }
            $name = self::applicationName();
            $sql = "SET application_name = '" . $name . "'";
            try {
                if ($connection instanceof PDO) {
                    if ($connection->getAttribute(PDO::ATTR_DRIVER_NAME) !== 'pgsql') {
                        return false;
                    }
                    if (self::$taggedPdo === null && class_exists('WeakMap', false)) {
                        self::$taggedPdo = new WeakMap();
                    }
                    if (self::$taggedPdo !== null && isset(self::$taggedPdo[$connection])) {
                        return true;
                    }
                    $ok = @$connection->exec($sql) !== false;
                    if ($ok && self::$taggedPdo !== null) {
                        self::$taggedPdo[$connection] = true;
                    }
                    return $ok;
                }
                if (function_exists('pg_parameter_status')) {
                    if (@pg_parameter_status($connection, 'application_name') === $name) {
                        return true;
                    }
                    return @pg_query($connection, $sql) !== false;
                }
            } catch (Throwable $e) {
            }
            return false;
        }

        /**
         * API: pg_pconnect() whose connection carries this request's tag, reused or not: a
         * drop-in replacement (same arguments, same result, same warnings on failure).
         */
        public static function pconnect(string $connectionString, int $flags = 0)
        {
            $connection = pg_pconnect($connectionString, $flags);
            if ($connection !== false) {
                self::tagConnection($connection);
            }
            return $connection;
        }

        /**
         * API: new PDO(...) that, when persistent (PDO::ATTR_PERSISTENT), carries this request's
         * tag: a drop-in replacement that throws what new PDO throws.
         */
        public static function pdo(string $dsn, ?string $username = null, ?string $password = null, ?array $options = null): PDO
        {
            $pdo = new PDO($dsn, $username, $password, $options);
            if (!empty($options[PDO::ATTR_PERSISTENT])) {
                self::tagConnection($pdo);
            }
            return $pdo;
        }

        /** Request start: ids, PGAPPNAME, the end-of-request hook. Called once by this file. */
        public static function begin(): void
        {
            self::$startNs = hrtime(true);
            self::$startWall = microtime(true);
            try {
                $incoming = isset($_SERVER['HTTP_TRACEPARENT']) ? (string) $_SERVER['HTTP_TRACEPARENT'] : '';
                if ($incoming !== '' && preg_match('/^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-.*)?$/', $incoming, $m)
                    && $m[1] !== 'ff' && ($m[1] !== '00' || !isset($m[4]))
                    && $m[2] !== str_repeat('0', 32) && $m[3] !== str_repeat('0', 16)) {
                    self::$traceId = $m[2];
                    self::$parentSpanId = $m[3];
                } else {
                    self::$traceId = bin2hex(random_bytes(16));
                    self::$parentSpanId = '';
                }
                self::$spanId = bin2hex(random_bytes(8));
                self::$taggedPdo = null;
                putenv('PGAPPNAME=' . self::applicationName());
                $threshold = self::setting('threshold_ms', '500');
                self::$thresholdNs = is_numeric($threshold) ? (int) ((float) $threshold * 1000000) : 500000000;
                self::startProfiler();
                if (!self::$active) {
                    self::$active = true;
                    // Registered from inside a shutdown function, so it runs after the application's own.
                    register_shutdown_function(static function () {
                        register_shutdown_function(array('BitvilleAgent', 'finish'));
                    });
                }
            } catch (Throwable $e) {
                self::$traceId = '';
            }
        }

        /** Request end: below the threshold return at once; else finish the response, then send. */
        public static function finish(): void
        {
            $durationNs = hrtime(true) - self::$startNs;
            $due = self::$profilerDue;
            if ($due !== null) {
                // A request that ended before profile_delay_ms took no sample at all: this one
                // disarm is all profiling cost it.
                self::$profilerDue = null;
                $due->stop();
            }
            $profiler = self::$profiler;
            if ($profiler !== null) {
                // Stopped first, so the agent's own work is not in the profile; a fast request's
                // samples go with the object.
                self::$profiler = null;
                $profiler->stop();
            }
            if ($durationNs < self::$thresholdNs || self::$traceId === '') {
                return;
            }
            set_error_handler(static function () {
                return true;
            });
            try {
                if (function_exists('fastcgi_finish_request')) {
                    @fastcgi_finish_request();
                }
                self::send(self::event($durationNs), $profiler);
            } catch (Throwable $e) {
            } finally {
                restore_error_handler();
            }
        }

        /** One setting: BITVILLE_<NAME> from the environment, else bitville.<name> from php.ini, else the default. */
        private static function setting(string $name, string $default): string
        {
            $env = getenv('BITVILLE_' . strtoupper($name));
            if ($env !== false && $env !== '') {
                return $env;
            }
            $ini = get_cfg_var('bitville.' . $name);
            return ($ini !== false && $ini !== '') ? (string) $ini : $default;
        }

        /**
         * Arms the wall-clock sampler when excimer is loaded and profile_period_ms is above 0:
         * at once with profile_delay_ms=0, else a one-shot timer that starts it once the request
         * has run that long (default a tenth of the threshold). Why the delay (measured in the
         * php-agent bench, see docs/php-agent.md): excimer 1.0 gives each profiler a timer of its
         * own, created and deleted per request, whose first expiry is drawn at random within the
         * period, often before the kernel's next tick, which costs reprogramming the timer
         * device twice; and every sample costs a thread (glibc's SIGEV_THREAD). A one-shot timer
         * due later than the tick costs only its four system calls, and a request that ends
         * before it takes no sample. A failure leaves the request unprofiled, never broken.
         */
        private static function startProfiler(): void
        {
            self::$profiler = null;
            self::$profilerDue = null;
            self::$lateStack = null;
            if (!class_exists('ExcimerProfiler', false)) {
                return;
            }
            $period = self::setting('profile_period_ms', '10');
            if (!is_numeric($period) || (float) $period <= 0) {
                return;
            }
            // Where even one armed timer per request is too much: profile a random share of requests.
            $rate = self::setting('profile_sample_rate', '1');
            if ($rate !== '1' && is_numeric($rate) && mt_rand() / mt_getrandmax() >= (float) $rate) {
                return;
            }
            self::$profilePeriodMs = max(1.0, (float) $period);
            $delay = self::setting('profile_delay_ms', '');
            self::$profileDelayNs = is_numeric($delay) ? (int) (max(0.0, (float) $delay) * 1000000) : intdiv(self::$thresholdNs, 10);
            try {
                if (self::$profileDelayNs === 0) {
                    self::startSampler();
                    return;
                }
                $due = new ExcimerTimer();
                $due->setEventType(EXCIMER_REAL);
                $due->setInterval(self::$profileDelayNs / 1e9);
                $due->setCallback(static function () {
                    BitvilleAgent::startDueProfiler();
                });
                $due->start();
                self::$profilerDue = $due;
            } catch (Throwable $e) {
            }
        }

        private static function startSampler(): void
        {
            $profiler = new ExcimerProfiler();
            $profiler->setEventType(EXCIMER_REAL);
            $profiler->setPeriod(self::$profilePeriodMs / 1000);
            $profiler->setMaxDepth(self::PROFILE_MAX_DEPTH);
            $profiler->start();
            self::$profiler = $profiler;
        }

        /**
         * Not API (public only for the timer's callback): the request has run profile_delay_ms.
         * The callback runs at the first point PHP checks for interrupts, so inside a long
         * built-in call (pg_query(), sleep(), curl_exec()) it runs only when that returns. Excimer
         * would have charged those samples to the PHP stack the call returns to, which is the
         * stack here: they are recorded as such, so the blocking call stays in the profile.
         */
        public static function startDueProfiler(): void
        {
            if (self::$profilerDue === null || self::$profiler !== null) {
                return;
            }
            try {
                $periodNs = (int) (self::$profilePeriodMs * 1000000);
                $lateNs = hrtime(true) - self::$startNs - self::$profileDelayNs;
                if ($lateNs >= $periodNs) {
                    $stack = self::currentStack();
                    if ($stack !== '') {
                        self::$lateStack = array($stack, intdiv($lateNs, $periodNs));
                    }
                }
                self::startSampler();
            } catch (Throwable $e) {
            }
        }

        /**
         * The application's stack where the due timer interrupted it, in excimer's collapsed
         * form: the script file outermost, then `function` or `Class::method` (a closure is
         * `{closure}`: its line is not known here), built-in functions left out as excimer does.
         */
        private static function currentStack(): string
        {
            // [0] this function, [1] startDueProfiler, [2] the timer's closure, then the application.
            $trace = array_slice(debug_backtrace(DEBUG_BACKTRACE_IGNORE_ARGS), 2);
            $names = array();
            foreach ($trace as $i => $frame) {
                if ($i === 0) {
                    continue;
                }
                $function = isset($frame['function']) ? $frame['function'] : '';
                if (in_array($function, array('include', 'include_once', 'require', 'require_once'), true)) {
                    // An included file's own code: excimer names it by the file.
                    $name = isset($trace[$i - 1]['file']) ? $trace[$i - 1]['file'] : '';
                } elseif ($function === '{closure}') {
                    $name = '{closure}';
                } else {
                    try {
                        $internal = isset($frame['class'])
                            ? (new ReflectionMethod($frame['class'], $function))->isInternal()
                            : (new ReflectionFunction($function))->isInternal();
                    } catch (Throwable $e) {
                        $internal = false;
                    }
                    if ($internal) {
                        continue;
                    }
                    $name = (isset($frame['class']) ? $frame['class'] . '::' : '') . $function;
                }
                $names[] = strtr($name, array(' ' => '_', "\0" => '_'));
            }
            $last = end($trace);
            if ($last !== false && isset($last['file'])) {
                $names[] = strtr($last['file'], array(' ' => '_', "\0" => '_'));
            }
            // Innermost first here; like excimer, a too deep stack loses its outermost frames.
            return implode(';', array_reverse(array_slice($names, 0, self::PROFILE_MAX_DEPTH)));
        }

        /**
         * The profile part of the event: collapsed stacks (`frame;frame;frame count` lines, the
         * script file as the outermost frame), heaviest first, at most profile_max_stacks lines
         * and profile_max_bytes bytes; what does not fit is one `(truncated) count` line, so the
         * sample total stays right. Null when nothing was sampled.
         */
        private static function profile(ExcimerProfiler $profiler, int $maxBytes): ?array
        {
            $log = $profiler->getLog();
            $stacks = array();
            $samples = 0;
            // excimer 1.0 starts every line after the first with a stray ';': empty frames are dropped.
            foreach (explode("\n", $log->formatCollapsed()) as $line) {
                $space = strrpos($line, ' ');
                if ($space === false) {
                    continue;
                }
                $count = (int) substr($line, $space + 1);
                $stack = implode(';', array_filter(explode(';', substr($line, 0, $space)), 'strlen'));
                if ($count <= 0 || $stack === '') {
                    continue;
                }
                $stacks[$stack] = (isset($stacks[$stack]) ? $stacks[$stack] : 0) + $count;
                $samples += $count;
            }
            if (self::$lateStack !== null) {
                list($stack, $count) = self::$lateStack;
                $stacks[$stack] = (isset($stacks[$stack]) ? $stacks[$stack] : 0) + $count;
                $samples += $count;
            }
            if ($samples === 0) {
                return null;
            }
            arsort($stacks, SORT_NUMERIC);
            $maxStacks = (int) self::setting('profile_max_stacks', '300');
            $maxBytes = min($maxBytes, (int) self::setting('profile_max_bytes', '32768'));
            $kept = array();
            $bytes = 0;
            $rest = 0;
            $dropped = 0;
            foreach ($stacks as $stack => $count) {
                $line = $stack . ' ' . $count;
                // 24 bytes stay free for the "(truncated) N" line.
                if ($rest === 0 && count($kept) < $maxStacks && $bytes + strlen($line) + 1 <= $maxBytes - 24) {
                    $kept[] = $line;
                    $bytes += strlen($line) + 1;
                } else {
                    $rest += $count;
                    $dropped++;
                }
            }
            if ($rest > 0) {
                $kept[] = '(truncated) ' . $rest;
            }
            return array(
                'period_ms' => self::$profilePeriodMs,
                'delay_ms' => self::$profileDelayNs / 1e6,
                'samples' => $samples,
                'collapsed' => implode("\n", $kept),
                'dropped_stacks' => $dropped,
            );
        }

        /** The event, as the daemon's schema (agents/php/event.ts) expects it. */
        private static function event(int $durationNs): array
        {
            $error = null;
            $last = error_get_last();
            if ($last !== null && ($last['type'] & (E_ERROR | E_PARSE | E_CORE_ERROR | E_COMPILE_ERROR | E_USER_ERROR | E_RECOVERABLE_ERROR))) {
                $error = array(
                    'type' => $last['type'],
                    'message' => substr((string) $last['message'], 0, self::MAX_FIELD),
                    'file' => substr((string) $last['file'], 0, self::MAX_FIELD),
                    'line' => (int) $last['line'],
                );
            }
            $status = http_response_code();
            $host = gethostname();
            return array(
                'v' => 1,
                'trace_id' => self::$traceId,
                'span_id' => self::$spanId,
                'parent_span_id' => self::$parentSpanId,
                'method' => isset($_SERVER['REQUEST_METHOD']) ? substr((string) $_SERVER['REQUEST_METHOD'], 0, 32) : '',
                'url' => substr(self::url(), 0, self::MAX_FIELD),
                'script' => isset($_SERVER['SCRIPT_NAME']) ? substr((string) $_SERVER['SCRIPT_NAME'], 0, self::MAX_FIELD) : '',
                'status' => is_int($status) ? $status : 0,
                'start_us' => (int) round(self::$startWall * 1000000),
                'duration_us' => intdiv($durationNs, 1000),
                'peak_memory' => memory_get_peak_usage(true),
                'host' => $host === false ? '' : $host,
                'project' => self::setting('project', ''),
                'php_version' => PHP_VERSION,
                'sapi' => PHP_SAPI,
                'pid' => getmypid(),
                'error' => $error,
            );
        }

        /**
         * The URL the client asked for: scheme://host[:port]/path?query, the values of deny-listed
         * query parameters replaced by REDACTED. Scheme from HTTPS (Apache, nginx's stock
         * fastcgi_params) or REQUEST_SCHEME; host and port from the Host header, the port falling
         * back to SERVER_PORT when the header carries none (nginx with `$host`, HTTP/1.0). Only
         * when REMOTE_ADDR is one of the configured `trusted_proxies` do X-Forwarded-Proto /
         * -Host / -Port replace them (else anyone could choose what is recorded).
         */
        private static function url(): string
        {
            $uri = isset($_SERVER['REQUEST_URI']) ? (string) $_SERVER['REQUEST_URI'] : '';
            $https = (isset($_SERVER['HTTPS']) && $_SERVER['HTTPS'] !== '' && strtolower((string) $_SERVER['HTTPS']) !== 'off')
                || (isset($_SERVER['REQUEST_SCHEME']) && strtolower((string) $_SERVER['REQUEST_SCHEME']) === 'https');
            $scheme = $https ? 'https' : 'http';
            $authority = isset($_SERVER['HTTP_HOST']) ? (string) $_SERVER['HTTP_HOST'] : '';
            list($host, $port) = self::splitHost($authority);
            if ($host === '' && isset($_SERVER['SERVER_NAME'])) {
                $host = (string) $_SERVER['SERVER_NAME'];
            }
            $forwarded = self::forwarded();
            if ($forwarded !== null) {
                list($proto, $fhost, $fport) = $forwarded;
                if ($proto !== '') {
                    $scheme = $proto;
                }
                if ($fhost !== '') {
                    list($host, $port) = self::splitHost($fhost);
                }
                // The port the client used: forwarded, or in the forwarded Host; never the one
                // the proxy reached this server on.
                if ($fport !== '') {
                    $port = $fport;
                }
            } elseif ($port === '' && isset($_SERVER['SERVER_PORT']) && ctype_digit((string) $_SERVER['SERVER_PORT'])) {
                $port = (string) $_SERVER['SERVER_PORT'];
            }
            if ($port === ($scheme === 'https' ? '443' : '80')) {
                $port = '';
            }
            $q = strpos($uri, '?');
            if ($q !== false) {
                $deny = array_flip(array_map('strtolower', array_map('trim', explode(',', self::setting('redact',
                    'password,passwd,pwd,secret,token,access_token,refresh_token,api_key,apikey,key,auth,session,sid,signature,sig,code')))));
                $pairs = explode('&', substr($uri, $q + 1));
                foreach ($pairs as $i => $pair) {
                    $eq = strpos($pair, '=');
                    $name = strtolower(urldecode($eq === false ? $pair : substr($pair, 0, $eq)));
                    if ($eq !== false && isset($deny[$name])) {
                        $pairs[$i] = substr($pair, 0, $eq) . '=REDACTED';
                    }
                }
                $uri = substr($uri, 0, $q) . '?' . implode('&', $pairs);
            }
            return $scheme . '://' . $host . ($port !== '' ? ':' . $port : '') . $uri;
        }

        /** 'host:port', '[v6]:port' or 'host' to [host, port or '']; a port that is not digits is ignored. */
        private static function splitHost(string $authority): array
        {
            $authority = trim($authority);
            if ($authority === '') {
                return array('', '');
            }
            $colon = strrpos($authority, ':');
            if ($colon === false || ($authority[0] === '[' && substr($authority, -1) === ']') || ($authority[0] !== '[' && strpos($authority, ':') !== $colon)) {
                return array($authority, '');
            }
            $port = substr($authority, $colon + 1);
            return array(substr($authority, 0, $colon), ctype_digit($port) ? $port : '');
        }

        /** [proto, host, port] from X-Forwarded-* when the peer is a trusted proxy and sent any; else null. First value of a list (the client's side). */
        private static function forwarded(): ?array
        {
            $trusted = self::setting('trusted_proxies', '');
            if ($trusted === '' || !isset($_SERVER['REMOTE_ADDR']) || !self::addressIn((string) $_SERVER['REMOTE_ADDR'], $trusted)) {
                return null;
            }
            $first = static function (string $key): string {
                if (!isset($_SERVER[$key])) {
                    return '';
                }
                $value = (string) $_SERVER[$key];
                $comma = strpos($value, ',');
                return trim($comma === false ? $value : substr($value, 0, $comma));
            };
            $proto = strtolower($first('HTTP_X_FORWARDED_PROTO'));
            $host = $first('HTTP_X_FORWARDED_HOST');
            $port = $first('HTTP_X_FORWARDED_PORT');
            if ($proto === '' && $host === '' && $port === '') {
                return null;
            }
            return array($proto === 'https' || $proto === 'http' ? $proto : '', $host, ctype_digit($port) ? $port : '');
        }

        /** Whether $address is in the comma-separated list of addresses and CIDR blocks (IPv4, IPv6, IPv4-mapped IPv6). */
        private static function addressIn(string $address, string $list): bool
        {
            $ip = @inet_pton($address);
            if ($ip === false) {
                return false;
            }
            if (strlen($ip) === 16 && substr($ip, 0, 12) === str_repeat("\0", 10) . "\xff\xff") {
                $ip = substr($ip, 12);
            }
            foreach (explode(',', $list) as $entry) {
                $entry = trim($entry);
                $slash = strpos($entry, '/');
                $net = @inet_pton($slash === false ? $entry : substr($entry, 0, $slash));
                $prefix = $slash === false ? '' : substr($entry, $slash + 1);
                // A malformed prefix trusts nothing (a typo must not trust everyone).
                if ($net === false || strlen($net) !== strlen($ip) || ($slash !== false && (!ctype_digit($prefix) || (int) $prefix > strlen($ip) * 8))) {
                    continue;
                }
                $bits = $slash === false ? strlen($ip) * 8 : (int) $prefix;
                $bytes = intdiv($bits, 8);
                if (substr($ip, 0, $bytes) !== substr($net, 0, $bytes)) {
                    continue;
                }
                $rest = $bits % 8;
                if ($rest === 0 || ((ord($ip[$bytes]) ^ ord($net[$bytes])) & (0xff << (8 - $rest)) & 0xff) === 0) {
                    return true;
                }
            }
            return false;
        }

        /** Non-blocking datagram send behind the breaker; failures are counted and ride along with the next success. */
        private static function send(array $event, ?ExcimerProfiler $profiler = null): void
        {
            $state = self::breakerState();
            $now = time();
            if ($state[1] > $now) {
                // Open: no attempt and no write, so a dead daemon costs one small read. Skipped
                // requests are counted only where counting is free (APCu).
                if (self::useApcu()) {
                    apcu_inc('bitville_agent_skipped');
                }
                return;
            }
            $event['lost'] = $state[2] + (self::useApcu() ? (int) apcu_fetch('bitville_agent_skipped') : 0);
            $flags = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE | JSON_PARTIAL_OUTPUT_ON_ERROR;
            $payload = json_encode($event, $flags);
            if ($profiler !== null && is_string($payload)) {
                // The profile gets what the datagram has left; JSON escaping (one byte per line
                // break, more for odd names) is paid back by cutting again by the overshoot.
                $budget = self::MAX_DATAGRAM - strlen($payload) - 100;
                for ($try = 0; $try < 3 && $budget > 0; $try++) {
                    $event['profile'] = self::profile($profiler, $budget);
                    $withProfile = json_encode($event, $flags);
                    if (!is_string($withProfile) || strlen($withProfile) <= self::MAX_DATAGRAM) {
                        break;
                    }
                    $budget -= strlen($withProfile) - self::MAX_DATAGRAM + 256;
                    $withProfile = null;
                }
                if (isset($withProfile) && is_string($withProfile)) {
                    $payload = $withProfile;
                }
            }
            $sent = false;
            if (is_string($payload)) {
                $path = self::setting('socket', '/run/bitville/php-agent.sock');
                if (function_exists('socket_sendto')) {
                    // ext-sockets (in Debian's php-cli): one sendto with MSG_DONTWAIT, no connect.
                    $socket = @socket_create(AF_UNIX, SOCK_DGRAM, 0);
                    if ($socket !== false) {
                        $sent = @socket_sendto($socket, $payload, strlen($payload), defined('MSG_DONTWAIT') ? MSG_DONTWAIT : 0, $path) === strlen($payload);
                        @socket_close($socket);
                    }
                } else {
                    $socket = @stream_socket_client('udg://' . $path, $errno, $errstr, 0);
                    if ($socket !== false) {
                        @stream_set_blocking($socket, false);
                        $sent = @fwrite($socket, $payload) === strlen($payload);
                        @fclose($socket);
                    }
                }
            }
            if ($sent) {
                if ($state[0] !== 0 || $state[2] !== 0) {
                    self::saveBreakerState(array(0, 0, 0));
                    if (self::useApcu()) {
                        apcu_store('bitville_agent_skipped', 0);
                    }
                }
                return;
            }
            $state[0]++;
            $state[2]++;
            if ($state[0] >= self::BREAKER_FAILURES) {
                $state[1] = $now + self::BREAKER_OPEN_SECONDS;
            }
            self::saveBreakerState($state);
        }

        /** [consecutive failures, open until (unix s), events lost since the last success]. */
        private static function breakerState(): array
        {
            if (self::useApcu()) {
                $raw = apcu_fetch('bitville_agent_breaker');
            } else {
                $raw = @file_get_contents(self::stateFile());
            }
            $parts = is_string($raw) ? explode(' ', $raw) : array();
            return count($parts) === 3 ? array((int) $parts[0], (int) $parts[1], (int) $parts[2]) : array(0, 0, 0);
        }

        private static function saveBreakerState(array $state): void
        {
            $raw = implode(' ', $state);
            if (self::useApcu()) {
                apcu_store('bitville_agent_breaker', $raw);
                return;
            }
            $file = self::stateFile();
            if ($raw === '0 0 0') {
                // Healthy is "no file": the check on every slow request is then one failed open.
                @unlink($file);
                return;
            }
            // Replaced atomically: concurrent workers never read a half-written file.
            $tmp = $file . '.' . getmypid() . '.' . mt_rand();
            if (@file_put_contents($tmp, $raw) !== false && !@rename($tmp, $file)) {
                @unlink($tmp);
            }
        }

        private static function useApcu(): bool
        {
            return function_exists('apcu_enabled') && apcu_enabled();
        }

        private static function stateFile(): string
        {
            return self::setting('state_file', sys_get_temp_dir() . '/bitville-php-agent.breaker');
        }
    }

    if (PHP_SAPI !== 'cli' || getenv('BITVILLE_CLI') === '1') {
        BitvilleAgent::begin();
    }
}
