<?php
// Below the agent's threshold: not recorded as a request, so it gets no summary.
require __DIR__ . '/db.php';
demo_query('SELECT 1');
demo_done('fast: below the threshold');
