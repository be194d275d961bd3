<?php
// Persistent connections as an FPM worker reuses them (php -S with one worker keeps them too):
// what application_name PostgreSQL sees on each, with and without the agent's helpers.
$conninfo = getenv('BITVILLE_TEST_PG_CONNINFO');
$seen = static function ($c): array {
    return pg_fetch_row(pg_query($c, 'SELECT application_name, pg_backend_pid() FROM pg_stat_activity WHERE pid = pg_backend_pid()'));
};
$c = pg_pconnect($conninfo);                 // a reuse runs RESET ALL: the opener's tag is back
list($plain, $backend) = $seen($c);
$c = BitvilleAgent::pconnect($conninfo);     // the drop-in replacement
list($wrapped) = $seen($c);
pg_pconnect($conninfo);                      // another library's pg_pconnect(): RESET ALL again
BitvilleAgent::tagConnection($c);
list($retagged) = $seen($c);
pg_query($c, 'SELECT 1 AS marker');
$again = BitvilleAgent::tagConnection($c);   // already tagged: must not cost a query
$observer = pg_connect($conninfo, PGSQL_CONNECT_FORCE_NEW);
$last = pg_fetch_result(pg_query_params($observer, 'SELECT query FROM pg_stat_activity WHERE pid = $1', array($backend)), 0, 0);
$pdo = BitvilleAgent::pdo('pgsql:' . $conninfo, null, null, array(PDO::ATTR_PERSISTENT => true));
$row = $pdo->query('SELECT application_name, pg_backend_pid() FROM pg_stat_activity WHERE pid = pg_backend_pid()')->fetch(PDO::FETCH_NUM);
header('Content-Type: application/json');
echo json_encode(array(
    'id' => BitvilleAgent::correlationId(), 'worker' => getmypid(), 'backend' => (int) $backend,
    'plain' => $plain, 'wrapped' => $wrapped, 'retagged' => $retagged, 'again' => $again, 'last' => $last,
    'pdo' => $row[0], 'pdo_backend' => (int) $row[1],
));
